"""The inbound SCIM 2.0 face (RFC 7643 / 7644) on the directory: Users (with the Enterprise extension) and
Groups, discovery, filters, PATCH, Bulk, ETags, and the Entra ID provisioning dialect per client token."""
