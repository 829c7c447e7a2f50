"""Access tokens: issued to apps by the client-credentials grant (and, for signed-in users, by the
authorization server in idp.oauth), verified strictly on every call (algorithm pinned, key looked up by kid
and bound to the tenant, issuer, audience, expiry, not-before). A delegated (user) token is also checked
against its user's revocation state on every call (idp.revocation); app tokens keep the memory fast path."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, replace
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.keys import ALGORITHM, KeyStore
from trustplane.auth.permissions import Principal
from trustplane.core.errors import Unauthenticated
from trustplane.core.ids import new_id
from trustplane.idp.revocation import check_delegated_token

_LEEWAY_SECONDS = 60
_VERIFIED_CACHE_SIZE = 4096


def issuer_for(base_url: str, tenant_id: str) -> str:
    return f"{base_url.rstrip('/')}/{tenant_id}/v2.0"


async def issue_access_token(
    session: AsyncSession,
    keys: KeyStore,
    *,
    issuer_base: str,
    tenant_id: str,
    audience: str,
    subject: str,
    client_id: str,
    name: str,
    roles: list[str],
    lifetime_seconds: int,
) -> str:
    key = await keys.active_key(session, tenant_id)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer_for(issuer_base, tenant_id),
        "aud": audience,
        "sub": subject,
        "oid": subject,
        "tid": tenant_id,
        "appid": client_id,
        "azp": client_id,
        "app_displayname": name,
        "idtyp": "app",
        "ver": "2.0",
        "roles": sorted(roles),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "jti": new_id(),
    }
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}, claims, key, algorithms=[ALGORITHM])


def _unverified_header(token: str) -> dict[str, Any]:
    import base64
    import json

    try:
        header_b64 = token.split(".", 1)[0]
        padded = header_b64 + "=" * (-len(header_b64) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unauthenticated("The access token is malformed.") from exc
    if not isinstance(header, dict):
        raise Unauthenticated("The access token is malformed.")
    return header


@dataclass(frozen=True)
class _Verified:
    """A token whose signature and claims passed, and what the time-independent checks depended on."""

    kid: str
    key: RSAKey
    tenant_id: str
    times: tuple[Any, Any, Any]  # exp, nbf, iat as the token carries them
    subject: str
    name: str
    roles: frozenset[str]
    kind: str = "app"
    scopes: frozenset[str] = frozenset()
    client_id: str = ""
    not_before: int = 0
    grant_id: str | None = None

    def principal(self) -> Principal:
        return Principal(
            tenant_id=self.tenant_id,
            kind=self.kind,
            id=self.subject,
            name=self.name,
            roles=self.roles,
            scopes=self.scopes,
            client_id=self.client_id,
        )


# Per KeyStore (so per app): (token, issuer base, audiences) -> what verifying it established. A hit skips
# the signature and claims work but repeats every check that can change: the key (through key_for_kid, so
# a retirement still takes effect as it does for a new token) and exp / nbf / iat against the clock.
_verified: weakref.WeakKeyDictionary[KeyStore, dict[tuple[str, str, tuple[str, ...]], _Verified]] = (
    weakref.WeakKeyDictionary()
)


def _times_still_valid(times: tuple[Any, Any, Any]) -> bool:
    """The clock checks of ``JWTClaimsRegistry.validate`` with the same leeway (exp essential)."""
    exp, nbf, iat = times
    now = int(time.time())
    if exp <= now - _LEEWAY_SECONDS:
        return False
    if nbf is not None and nbf > now + _LEEWAY_SECONDS:
        return False
    return not (iat is not None and iat > now + _LEEWAY_SECONDS)


def _verified_entry(keys: KeyStore, cache_key: tuple[str, str, tuple[str, ...]]) -> _Verified | None:
    cache = _verified.get(keys)
    hit = cache.get(cache_key) if cache is not None else None
    return hit if hit is not None and _times_still_valid(hit.times) else None


def _principal_if_key_unchanged(hit: _Verified, found: tuple[str, RSAKey] | None) -> Principal | None:
    if found is None or found[0] != hit.tenant_id or found[1] is not hit.key:
        return None
    return hit.principal()


async def _cached_principal(
    session: AsyncSession, keys: KeyStore, cache_key: tuple[str, str, tuple[str, ...]]
) -> Principal | None:
    hit = _verified_entry(keys, cache_key)
    if hit is None:
        return None
    principal = _principal_if_key_unchanged(hit, await keys.key_for_kid(session, hit.kid))
    if principal is not None and hit.kind == "user":
        await check_delegated_token(session, hit.tenant_id, hit.subject, hit.not_before, hit.grant_id)
    return principal


def verified_from_memory(
    keys: KeyStore, token: str, *, issuer_base: str, audiences: list[str]
) -> Principal | None:
    """``verify_access_token`` for a token verified before whose key was checked against its row within
    the key cache period: the same checks, from memory, with no session. None means: verify it in full."""
    hit = _verified_entry(keys, (token, issuer_base, tuple(audiences)))
    if hit is None or hit.kind != "app":  # a user's token needs its user's revocation state: a query
        return None
    return _principal_if_key_unchanged(hit, keys.fresh_key(hit.kid))


def _remember_verified(keys: KeyStore, cache_key: tuple[str, str, tuple[str, ...]], entry: _Verified) -> None:
    cache = _verified.setdefault(keys, {})
    if len(cache) >= _VERIFIED_CACHE_SIZE:
        cache.clear()  # crude but bounded; a miss only costs one full verification
    cache[cache_key] = entry


async def verify_access_token(
    session: AsyncSession, keys: KeyStore, token: str, *, issuer_base: str, audiences: list[str]
) -> Principal:
    cache_key = (token, issuer_base, tuple(audiences))
    cached = await _cached_principal(session, keys, cache_key)
    if cached is not None:
        return cached
    if token.count(".") != 2:
        raise Unauthenticated("The access token is malformed.")
    header = _unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated("The token's signing algorithm is not accepted.")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise Unauthenticated("The token names no signing key.")
    found = await keys.key_for_kid(session, kid)
    if found is None:
        raise Unauthenticated("The token's signing key is unknown or retired.")
    key_tenant, key = found
    try:
        decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
    except (JoseError, ValueError) as exc:
        raise Unauthenticated("The token's signature is invalid.") from exc
    claims = decoded.claims
    # The key is bound to one tenant: a token signed by tenant A's key can only speak for tenant A.
    if claims.get("tid") != key_tenant:
        raise Unauthenticated("The token's tenant does not match its signing key.")
    registry = jwt.JWTClaimsRegistry(
        leeway=_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer_for(issuer_base, key_tenant)},
        aud={"essential": True, "values": audiences},
        exp={"essential": True},
        nbf={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise Unauthenticated(f"The token is not valid here: {exc.description or exc.error}.") from exc
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        raise Unauthenticated("The token's roles claim is malformed.")
    entry = _Verified(
        kid=kid,
        key=key,
        tenant_id=key_tenant,
        times=(claims["exp"], claims.get("nbf"), claims.get("iat")),
        subject=str(claims["sub"]),
        name=str(claims.get("app_displayname", "")),
        roles=frozenset(str(r) for r in roles),
        client_id=str(claims.get("azp", "")),
    )
    if claims.get("idtyp") == "user":
        entry = _delegated(entry, claims)
        await check_delegated_token(session, key_tenant, entry.subject, entry.not_before, entry.grant_id)
    _remember_verified(keys, cache_key, entry)
    return entry.principal()


def _delegated(entry: _Verified, claims: dict[str, Any]) -> _Verified:
    """A user's token: no app roles, its scopes, and what its revocation check needs."""
    scp, nbf, grant = claims.get("scp"), claims.get("nbf"), claims.get("tp_grant")
    if not isinstance(scp, str) or not isinstance(nbf, int) or not isinstance(grant, str | None):
        raise Unauthenticated("The token's scp, nbf or tp_grant claim is malformed.")
    return replace(
        entry,
        kind="user",
        name=str(claims.get("name", "")),
        roles=frozenset(),
        scopes=frozenset(scp.split()),
        not_before=nbf,
        grant_id=grant,
    )
