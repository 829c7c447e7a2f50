"""Single sign-on. The authorization server (``oauth/``: OAuth 2.0 / OpenID Connect on Authlib — codes with
PKCE, refresh token families, client credentials, ID tokens, userinfo, discovery, revocation,
introspection, logout, consent), browser sessions (``sessions``) and continuous access evaluation
(``revocation``: a disabled, reset or high-risk user loses sessions and tokens within one request); the
sign-in pages and the gate that runs identity protection and conditional access live in ``signin/``."""
