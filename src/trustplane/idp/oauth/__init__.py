"""The OAuth 2.0 / OpenID Connect authorization server (see ``trustplane.idp``)."""
