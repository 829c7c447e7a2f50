"""Who is calling: signing keys and JWKS, access tokens, app permissions, long-lived API tokens."""
