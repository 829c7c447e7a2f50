"""The directory: tenants, users, groups (nested), memberships, applications and the audit log.
It is the one source of truth every face reads and writes through its services."""
