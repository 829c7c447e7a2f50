"""The token endpoint's grants — client credentials, authorization code (with PKCE) and refresh token
(rotated, with reuse detection) — and the tokens they mint: access tokens, ID tokens, refresh tokens.

A code or refresh token is a random string stored as its SHA-256. Redeeming one is an atomic UPDATE …
WHERE not yet spent, so of two concurrent redemptions exactly one wins; a second redemption is treated as
theft (RFC 6749 4.1.2 and 10.4, OAuth 2.0 Security BCP 4.14): the whole grant family is revoked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.keys import ALGORITHM, KeyStore
from trustplane.auth.tokens import issue_access_token, issuer_for
from trustplane.core.clock import to_utc, utcnow
from trustplane.core.ids import new_id
from trustplane.directory.models import Application, User
from trustplane.directory.repository import UserRepository
from trustplane.idp.oauth.models import OAuthGrant, RefreshToken
from trustplane.idp.oauth.repository import (
    AuthorizationCodeRepository,
    GrantRepository,
    RefreshTokenRepository,
)
from trustplane.idp.oauth.service import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    Scope,
    check_code_verifier,
    digest,
    new_secret,
    parse_scope,
    require_grant_type,
)
from trustplane.idp.revocation import not_before_for, still_valid
from trustplane.idp.sessions import BrowserSessionRepository

REFRESH_TOKEN_LIFETIME = timedelta(days=90)  # sliding: each rotation starts a new one, as Entra's
MFA_ACR = "urn:trustplane:acr:mfa"
SINGLE_FACTOR_ACR = "urn:trustplane:acr:1fa"
CODE_REUSE = "codeReuse"
REFRESH_TOKEN_REUSE = "refreshTokenReuse"  # noqa: S105  (a revocation reason)


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


# ---------------------------------------------------------------- client credentials


async def client_credentials(ctx: TokenContext, app: Application, fields: dict[str, str]) -> dict[str, Any]:
    scope = fields.get("scope", "")
    if not scope:
        raise InvalidRequestError(description="The request body must contain the parameter 'scope'.")
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise InvalidScopeError(description="The scope must be a single '<resource>/.default' value.")
    resource = scopes[0][: -len("/.default")]
    if resource not in ctx.audiences:
        raise InvalidScopeError(description=f"The resource '{resource}' is not served by this authority.")
    token = await issue_access_token(
        ctx.session,
        ctx.keys,
        issuer_base=ctx.issuer_base,
        tenant_id=ctx.tenant_id,
        audience=resource,
        subject=app.id,
        client_id=app.app_id,
        name=app.display_name,
        roles=list(app.permissions),
        lifetime_seconds=ctx.lifetime_seconds,
    )
    return {
        "token_type": "Bearer",
        "expires_in": ctx.lifetime_seconds,
        "ext_expires_in": ctx.lifetime_seconds,
        "access_token": token,
    }


# ---------------------------------------------------------------- authorization code


async def authorization_code(ctx: TokenContext, app: Application, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("code")
    if not value:
        raise InvalidRequestError(description="The request body must contain the parameter 'code'.")
    codes = AuthorizationCodeRepository(ctx.session, ctx.tenant_id)
    code = await codes.by_hash(digest(value))
    now = utcnow()
    if code is None or code.application_id != app.id:
        raise _bad_grant()
    grants = GrantRepository(ctx.session, ctx.tenant_id)
    if code.redeemed_at is not None:
        # A second redemption: whoever holds the code now, the tokens of the first one are not safe.
        if code.grant_id is not None:
            await grants.revoke([code.grant_id], CODE_REUSE, now)
        raise _bad_grant()
    if to_utc(code.expires_at) <= now:
        raise _bad_grant()
    if fields.get("redirect_uri") != code.redirect_uri:
        raise InvalidGrantError(description="The redirect_uri does not match the authorization request's.")
    if not check_code_verifier(code, fields.get("code_verifier")):
        raise InvalidGrantError(description="PKCE verification failed (code_verifier missing or wrong).")
    user = await _live_user(ctx, code.user_id, issued_at=code.created_at)
    if code.session_id is not None:
        browser = await BrowserSessionRepository(ctx.session, ctx.tenant_id).get(code.session_id)
        if browser is None or browser.revoked_at is not None:
            raise _bad_grant()
    grant_id = new_id()
    if not await codes.claim(code.id, grant_id, now):  # lost a race with a concurrent redemption
        await ctx.session.refresh(code)
        await grants.revoke([g for g in (code.grant_id,) if g], CODE_REUSE, now)
        raise _bad_grant()
    grant = grants.add(
        OAuthGrant(
            id=grant_id,
            application_id=app.id,
            user_id=user.id,
            session_id=code.session_id,
            scope=code.scope,
            auth_time=code.auth_time,
            amr=list(code.amr or []),
            created_at=now,
        )
    )
    await ctx.session.flush()
    scope = parse_scope(code.scope, ctx.audiences)
    return await mint_user_tokens(ctx, app, grant, user, scope, nonce=code.nonce)


# ---------------------------------------------------------------- refresh token


async def refresh_token(ctx: TokenContext, app: Application, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("refresh_token")
    if not value:
        raise InvalidRequestError(description="The request body must contain the parameter 'refresh_token'.")
    tokens = RefreshTokenRepository(ctx.session, ctx.tenant_id)
    row = await tokens.by_hash(digest(value))
    if row is None:
        raise _bad_grant()
    grants = GrantRepository(ctx.session, ctx.tenant_id)
    grant = await grants.get(row.grant_id)
    now = utcnow()
    if grant is None or grant.application_id != app.id or grant.revoked_at is not None:
        raise _bad_grant()
    if row.used_at is not None:
        await grants.revoke([grant.id], REFRESH_TOKEN_REUSE, now)  # a spent token again: the family goes
        raise _bad_grant()
    if to_utc(row.expires_at) <= now:
        raise _bad_grant()
    user = await _live_user(ctx, grant.user_id, issued_at=row.created_at)
    if not await tokens.spend(row.id, now):
        await grants.revoke([grant.id], REFRESH_TOKEN_REUSE, now)
        raise _bad_grant()
    granted = parse_scope(grant.scope, ctx.audiences)
    scope = granted
    if fields.get("scope"):
        asked = parse_scope(fields["scope"], ctx.audiences)
        if not set(asked.all) <= set(granted.all):
            raise InvalidScopeError(description="A refresh may narrow the granted scope, never widen it.")
        scope = asked
    return await mint_user_tokens(ctx, app, grant, user, scope, nonce=None, refresh_scope=granted)


async def _live_user(ctx: TokenContext, user_id: str, *, issued_at: datetime) -> User:
    """The user of a code or refresh token, if nothing revoked their access since it was issued
    (continuous access evaluation: checked here, where tokens are redeemed, not by a later job)."""
    user = await UserRepository(ctx.session, ctx.tenant_id).get(user_id)
    if user is None or not still_valid(user, issued_at):
        raise _bad_grant()
    return user


GRANTS = {
    CLIENT_CREDENTIALS: client_credentials,
    AUTHORIZATION_CODE: authorization_code,
    REFRESH_TOKEN: refresh_token,
}


async def run_grant(
    ctx: TokenContext, app: Application, grant_type: str, fields: dict[str, str]
) -> dict[str, Any]:
    require_grant_type(app, grant_type)
    return await GRANTS[grant_type](ctx, app, fields)


# ---------------------------------------------------------------- minting


def acr_for(amr: list[str]) -> str:
    return MFA_ACR if "mfa" in amr else SINGLE_FACTOR_ACR


async def mint_user_tokens(
    ctx: TokenContext,
    app: Application,
    grant: OAuthGrant,
    user: User,
    scope: Scope,
    *,
    nonce: str | None,
    refresh_scope: Scope | None = None,
) -> dict[str, Any]:
    """An access token for the scope's resource, an ID token when ``openid`` was granted and a new refresh
    token in the same family when ``offline_access`` was."""
    key = await ctx.keys.active_key(ctx.session, ctx.tenant_id)
    now = not_before_for(user.sign_in_sessions_valid_from, int(time.time()))
    issuer = issuer_for(ctx.issuer_base, ctx.tenant_id)
    amr = list(grant.amr or [])
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    access_claims: dict[str, Any] = {
        "iss": issuer,
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
        "amr": amr,
        "iat": now,
        "nbf": now,
        "exp": now + ctx.lifetime_seconds,
        "jti": new_id(),
        "tp_grant": grant.id,
    }
    if grant.session_id:
        access_claims["sid"] = grant.session_id
    access_token = jwt.encode(header, access_claims, key, algorithms=[ALGORITHM])
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": scope.text,
        "expires_in": ctx.lifetime_seconds,
        "ext_expires_in": ctx.lifetime_seconds,
        "access_token": access_token,
    }
    if "openid" in scope.oidc:
        id_claims: dict[str, Any] = {
            "iss": issuer,
            "aud": app.app_id,
            "sub": user.id,
            "oid": user.id,
            "tid": ctx.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + ctx.lifetime_seconds,
            "auth_time": int(to_utc(grant.auth_time).timestamp()),
            "amr": amr,
            "acr": acr_for(amr),
            "at_hash": create_half_hash(access_token, ALGORITHM).decode(),
            "ver": "2.0",
        }
        if grant.session_id:
            id_claims["sid"] = grant.session_id
        if nonce is not None:
            id_claims["nonce"] = nonce
        if "profile" in scope.oidc:
            id_claims["name"] = user.display_name or ""
            id_claims["preferred_username"] = user.user_principal_name
        if "email" in scope.oidc and user.mail:
            id_claims["email"] = user.mail
        body["id_token"] = jwt.encode(header, id_claims, key, algorithms=[ALGORITHM])
    keeps = refresh_scope or scope
    if "offline_access" in keeps.oidc:
        value = new_secret()
        RefreshTokenRepository(ctx.session, ctx.tenant_id).add(
            RefreshToken(
                token_hash=digest(value),
                grant_id=grant.id,
                created_at=utcnow(),
                expires_at=utcnow() + REFRESH_TOKEN_LIFETIME,
            )
        )
        await ctx.session.flush()
        body["refresh_token"] = value
    return body
