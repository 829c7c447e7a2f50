"""The token endpoint's grants on Authlib's grant classes — authorization code (with PKCE, RFC 7636, through
Authlib's ``CodeChallenge``), refresh token (rotated, with reuse detection) and client credentials — and the
ID token through Authlib's OpenID Connect extension. Authlib runs each grant's protocol steps (client
authentication, grant-type check, redirect URI match, PKCE, scope narrowing, the response); the callbacks
here are TrustPlane's storage and policy: tenant-scoped lookups, the grant family, continuous access
evaluation, and the Entra-shaped access token.

Authlib is synchronous and our storage is SQLAlchemy async: the server runs inside
``sqlalchemy.util.greenlet_spawn`` (see ``server.py``), so each callback awaits the async repositories with
``await_only``.

A code or refresh token is a random string stored as its SHA-256. Redeeming one is an atomic UPDATE …
WHERE not yet spent, so of two concurrent redemptions exactly one wins; a second redemption is treated as
theft (RFC 6749 4.1.2 and 10.4, OAuth 2.0 Security BCP 4.14): the whole grant family is revoked."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from joserfc import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from trustplane.auth.keys import ALGORITHM, KeyStore
from trustplane.auth.tokens import issue_access_token, issuer_for
from trustplane.core.clock import to_utc, utcnow
from trustplane.core.ids import new_id
from trustplane.directory.models import Application, User
from trustplane.directory.repository import UserRepository
from trustplane.idp.oauth.models import AuthorizationCode, OAuthGrant, RefreshToken
from trustplane.idp.oauth.repository import (
    AuthorizationCodeRepository,
    GrantRepository,
    RefreshTokenRepository,
)
from trustplane.idp.oauth.service import Scope, digest, new_secret, parse_scope, store_code
from trustplane.idp.revocation import not_before_for, still_valid
from trustplane.idp.sessions import BrowserSessionRepository

if TYPE_CHECKING:
    from trustplane.idp.oauth.server import OAuthClient, TrustPlaneAuthorizationServer

REFRESH_TOKEN_LIFETIME = timedelta(days=90)  # sliding: each rotation starts a new one, as Entra's
MFA_ACR = "urn:trustplane:acr:mfa"
SINGLE_FACTOR_ACR = "urn:trustplane:acr:1fa"
CODE_REUSE = "codeReuse"
REFRESH_TOKEN_REUSE = "refreshTokenReuse"  # noqa: S105  (a revocation reason)
# Every client authenticates with a secret (HTTP Basic or the form) or, a public client, names itself.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

T = TypeVar("T")


def wait(coro: Coroutine[Any, Any, T]) -> T:
    """An async call from Authlib's synchronous callbacks (they run inside ``greenlet_spawn``)."""
    result: T = await_only(coro)
    return result


@dataclass(frozen=True)
class TokenContext:
    session: AsyncSession
    keys: KeyStore
    tenant_id: str
    issuer_base: str
    audiences: list[str]
    lifetime_seconds: int


def _bad_grant() -> InvalidGrantError:
    return InvalidGrantError(description="The grant is invalid, expired, revoked or was already used.")


def _live_user(ctx: TokenContext, user_id: str, *, issued_at: datetime) -> User:
    """The user of a code or refresh token, if nothing revoked their access since it was issued
    (continuous access evaluation: checked here, where tokens are redeemed, not by a later job)."""
    user = wait(UserRepository(ctx.session, ctx.tenant_id).get(user_id))
    if user is None or not still_valid(user, issued_at):
        raise _bad_grant()
    return user


class _Grant:
    """What every TrustPlane grant reads from its server: the request's tenant context."""

    server: TrustPlaneAuthorizationServer
    request: Any

    @property
    def ctx(self) -> TokenContext:
        return self.server.ctx

    @property
    def app(self) -> Application:
        client: OAuthClient = self.request.client
        return client.app


# ---------------------------------------------------------------- client credentials


class ClientCredentialsGrant(_Grant, grants.ClientCredentialsGrant):
    # "none" too, so a public client is identified and then refused as unauthorized_client: public
    # registrations never carry this grant type (service.register_client), which Authlib checks next.
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        """Entra's rule: one ``<resource>/.default`` scope, for a resource this authority serves."""
        scope = self.request.payload.scope or ""
        if not scope:
            raise InvalidRequestError(description="The request body must contain the parameter 'scope'.")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise InvalidScopeError(description="The scope must be a single '<resource>/.default' value.")
        resource = scopes[0][: -len("/.default")]
        if resource not in self.ctx.audiences:
            raise InvalidScopeError(description=f"The resource '{resource}' is not served by this authority.")

    def generate_token(self, user: Any = None, scope: str | None = None, **_: Any) -> dict[str, Any]:
        ctx, app = self.ctx, self.app
        token = wait(
            issue_access_token(
                ctx.session,
                ctx.keys,
                issuer_base=ctx.issuer_base,
                tenant_id=ctx.tenant_id,
                audience=(scope or "")[: -len("/.default")],
                subject=app.id,
                client_id=app.app_id,
                name=app.display_name,
                roles=list(app.permissions),
                lifetime_seconds=ctx.lifetime_seconds,
            )
        )
        return {
            "token_type": "Bearer",
            "expires_in": ctx.lifetime_seconds,
            "ext_expires_in": ctx.lifetime_seconds,
            "access_token": token,
        }


# ---------------------------------------------------------------- authorization code


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (plain is refused when the code is issued), required of public clients, and no
    downgrade: a verifier sent for a code issued without a challenge is refused too (Authlib's check)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        """Authlib's check; a missing, stray or malformed verifier is ``invalid_grant`` on our wire (the
        code cannot be redeemed by this request), as a wrong one is."""
        try:
            super().validate_code_verifier(grant, result)
        except InvalidRequestError as exc:
            raise InvalidGrantError(description=f"PKCE verification failed: {exc.description}") from exc


class AuthorizationCodeGrant(_Grant, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthorizationCode:
        ctx = self.ctx
        row = wait(AuthorizationCodeRepository(ctx.session, ctx.tenant_id).by_hash(digest(code)))
        if row is None or row.application_id != client.app.id:
            raise _bad_grant()
        if row.redeemed_at is not None:
            # A second redemption: whoever holds the code now, the tokens of the first one are not safe.
            if row.grant_id is not None:
                wait(GrantRepository(ctx.session, ctx.tenant_id).revoke([row.grant_id], CODE_REUSE, utcnow()))
            raise _bad_grant()
        if to_utc(row.expires_at) <= utcnow():
            raise _bad_grant()
        return row

    def authenticate_user(self, code: AuthorizationCode) -> User:
        """Runs after Authlib checked the redirect URI and PKCE: the user must still be allowed in, and the
        code is claimed here, atomically, before anything is minted."""
        ctx = self.ctx
        user = _live_user(ctx, code.user_id, issued_at=code.created_at)
        if code.session_id is not None:
            browser = wait(BrowserSessionRepository(ctx.session, ctx.tenant_id).get(code.session_id))
            if browser is None or browser.revoked_at is not None:
                raise _bad_grant()
        now = utcnow()
        grant_id = new_id()
        grants_repo = GrantRepository(ctx.session, ctx.tenant_id)
        if not wait(AuthorizationCodeRepository(ctx.session, ctx.tenant_id).claim(code.id, grant_id, now)):
            wait(ctx.session.refresh(code))  # lost a race with a concurrent redemption
            wait(grants_repo.revoke([g for g in (code.grant_id,) if g], CODE_REUSE, now))
            raise _bad_grant()
        self.request.tp_grant = grants_repo.add(
            OAuthGrant(
                id=grant_id,
                application_id=code.application_id,
                user_id=user.id,
                session_id=code.session_id,
                scope=code.scope,
                auth_time=code.auth_time,
                amr=list(code.amr or []),
                created_at=now,
            )
        )
        wait(ctx.session.flush())
        self.request.tp_nonce = code.nonce
        return user

    def generate_token(self, user: Any = None, scope: str | None = None, **_: Any) -> dict[str, Any]:
        grant: OAuthGrant = self.request.tp_grant
        return mint_user_tokens(self, grant, user, parse_scope(grant.scope, self.ctx.audiences))

    def delete_authorization_code(self, code: AuthorizationCode) -> None:
        """Nothing to delete: the code was claimed in ``authenticate_user``; its row stays as the evidence
        a second redemption is judged by."""

    def generate_authorization_code(self) -> str:
        return new_secret()

    def save_authorization_code(self, code: str, request: Any) -> None:
        """After the sign-in gate and consent: ``request.user`` is the ``contracts.Authenticated``."""
        who = request.user
        wait(
            store_code(
                self.ctx.session,
                self.ctx.tenant_id,
                request.tp_areq,
                code,
                user_id=who.user_id,
                session_id=who.session_id,
                auth_time=who.auth_time,
                amr=who.amr,
            )
        )


# ---------------------------------------------------------------- refresh token


@dataclass
class _RefreshCredential:
    row: RefreshToken
    grant: OAuthGrant

    def check_client(self, client: OAuthClient) -> bool:
        return self.grant.application_id == client.app.id

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshTokenGrant(_Grant, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every exchange spends the old token and returns a new one

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshCredential:
        ctx = self.ctx
        row = wait(RefreshTokenRepository(ctx.session, ctx.tenant_id).by_hash(digest(refresh_token)))
        if row is None:
            raise _bad_grant()
        grants_repo = GrantRepository(ctx.session, ctx.tenant_id)
        grant = wait(grants_repo.get(row.grant_id))
        client: OAuthClient = self.request.client
        if grant is None or grant.application_id != client.app.id or grant.revoked_at is not None:
            raise _bad_grant()
        if row.used_at is not None:
            wait(grants_repo.revoke([grant.id], REFRESH_TOKEN_REUSE, utcnow()))  # spent again: family goes
            raise _bad_grant()
        if to_utc(row.expires_at) <= utcnow():
            raise _bad_grant()
        return _RefreshCredential(row, grant)

    def _validate_token_scope(self, token: _RefreshCredential) -> None:
        """Authlib's rule (a refresh may narrow, never widen) on scopes read the way this server reads
        them: a bare name means the first audience's scope."""
        asked = self.request.payload.scope
        if not asked:
            return
        granted = parse_scope(token.grant.scope, self.ctx.audiences)
        if not set(parse_scope(asked, self.ctx.audiences).all) <= set(granted.all):
            raise InvalidScopeError(description="A refresh may narrow the granted scope, never widen it.")

    def authenticate_user(self, credential: _RefreshCredential) -> User:
        ctx = self.ctx
        user = _live_user(ctx, credential.grant.user_id, issued_at=credential.row.created_at)
        if not wait(RefreshTokenRepository(ctx.session, ctx.tenant_id).spend(credential.row.id, utcnow())):
            wait(
                GrantRepository(ctx.session, ctx.tenant_id).revoke(
                    [credential.grant.id], REFRESH_TOKEN_REUSE, utcnow()
                )
            )
            raise _bad_grant()
        self.request.tp_grant = credential.grant
        self.request.tp_nonce = None
        return user

    def generate_token(self, user: Any = None, scope: str | None = None, **_: Any) -> dict[str, Any]:
        grant: OAuthGrant = self.request.tp_grant
        granted = parse_scope(grant.scope, self.ctx.audiences)
        asked = (
            parse_scope(self.request.payload.scope, self.ctx.audiences)
            if self.request.payload.scope
            else None
        )
        return mint_user_tokens(self, grant, user, asked or granted, refresh_scope=granted)

    def revoke_old_credential(self, refresh_token: _RefreshCredential) -> None:
        """Nothing left to do: the token was spent atomically in ``authenticate_user``."""


# ---------------------------------------------------------------- ID token (Authlib's OpenID Connect)


def acr_for(amr: list[str]) -> str:
    return MFA_ACR if "mfa" in amr else SINGLE_FACTOR_ACR


class IdToken(OpenIDCode):
    """Authlib's ID token (after the token response, when ``openid`` was granted; ``at_hash`` and signing
    are Authlib's) with Entra's claims, for the code and the refresh grants alike."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)

    def exists_nonce(self, nonce: str, request: Any) -> bool:  # pragma: no cover - authorize is ours
        return False

    def get_client_algorithm(self, client: Any) -> str:
        return ALGORITHM

    def get_encode_header(self, client: Any) -> dict[str, str]:
        return {"alg": ALGORITHM, "typ": "JWT", "kid": client.signing_key.kid}

    def resolve_client_private_key(self, client: Any) -> Any:
        return client.signing_key

    def get_compatible_claims(self, request: Any) -> dict[str, Any]:
        grant: OAuthGrant = request.tp_grant
        now: int = request.tp_now
        ctx: TokenContext = request.client.ctx
        amr = list(grant.amr or [])
        claims: dict[str, Any] = {
            "iss": issuer_for(ctx.issuer_base, ctx.tenant_id),
            "aud": request.client.app.app_id,
            "sub": grant.user_id,
            "oid": grant.user_id,
            "tid": ctx.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + ctx.lifetime_seconds,
            "auth_time": int(to_utc(grant.auth_time).timestamp()),
            "amr": amr,
            "acr": acr_for(amr),
            "ver": "2.0",
        }
        if grant.session_id:
            claims["sid"] = grant.session_id
        if request.tp_nonce is not None:
            claims["nonce"] = request.tp_nonce
        return claims

    def get_authorization_code_claims(self, authorization_code: Any) -> dict[str, Any]:
        return {}  # nonce, auth_time and amr come from the grant (the same on a refresh)

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        names = scope.split()
        info: dict[str, Any] = {}
        if "profile" in names:
            info["name"] = user.display_name or ""
            info["preferred_username"] = user.user_principal_name
        if "email" in names and user.mail:
            info["email"] = user.mail
        return info


# ---------------------------------------------------------------- minting


def mint_user_tokens(
    grant_step: _Grant,
    grant: OAuthGrant,
    user: User,
    scope: Scope,
    *,
    refresh_scope: Scope | None = None,
) -> dict[str, Any]:
    """An access token for the scope's resource and a new refresh token in the same family when
    ``offline_access`` was granted (the ID token is added by ``IdToken`` after this)."""
    ctx, app, request = grant_step.ctx, grant_step.app, grant_step.request
    key = wait(ctx.keys.active_key(ctx.session, ctx.tenant_id))
    request.client.signing_key = key
    now = not_before_for(user.sign_in_sessions_valid_from, int(time.time()))
    request.tp_now = now
    access_claims: dict[str, Any] = {
        "iss": issuer_for(ctx.issuer_base, ctx.tenant_id),
        "aud": scope.resource,
        "sub": user.id,
        "oid": user.id,
        "tid": ctx.tenant_id,
        "azp": app.app_id,
        "appid": app.app_id,
        "app_displayname": app.display_name,
        "idtyp": "user",
        "ver": "2.0",
        "scp": scope.scp,
        "name": user.display_name or "",
        "preferred_username": user.user_principal_name,
        "amr": list(grant.amr or []),
        "iat": now,
        "nbf": now,
        "exp": now + ctx.lifetime_seconds,
        "jti": new_id(),
        "tp_grant": grant.id,
    }
    if grant.session_id:
        access_claims["sid"] = grant.session_id
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": scope.text,
        "expires_in": ctx.lifetime_seconds,
        "ext_expires_in": ctx.lifetime_seconds,
        "access_token": jwt.encode(header, access_claims, key, algorithms=[ALGORITHM]),
    }
    if "offline_access" in (refresh_scope or scope).oidc:
        value = new_secret()
        RefreshTokenRepository(ctx.session, ctx.tenant_id).add(
            RefreshToken(
                token_hash=digest(value),
                grant_id=grant.id,
                created_at=utcnow(),
                expires_at=utcnow() + REFRESH_TOKEN_LIFETIME,
            )
        )
        wait(ctx.session.flush())
        body["refresh_token"] = value
    return body
