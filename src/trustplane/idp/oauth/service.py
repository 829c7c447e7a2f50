"""The rules of the authorization server, once: app registrations for sign-in (exact redirect URIs,
public or confidential, allowed grants), client authentication, validation of an authorization request,
consent, codes, and the end of a grant (revocation, logout). No HTTP types here; errors are Authlib's
OAuth 2.0 error classes, which the api renders in RFC 6749's dialect."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import (
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.auth.service import (
    ApplicationRepository,
    add_application,
    check_permissions,
)
from trustplane.core.clock import utcnow
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.events import Actor, EventSpec, emit
from trustplane.core.ids import is_uuid, new_id
from trustplane.directory.models import Application
from trustplane.idp.oauth.models import AuthorizationCode, Consent
from trustplane.idp.oauth.repository import AuthorizationCodeRepository, ConsentRepository, GrantRepository
from trustplane.idp.sessions import secret_digest as digest

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105  (a grant type's name)
CLIENT_CREDENTIALS = "client_credentials"
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS)

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
CODE_LIFETIME = timedelta(minutes=10)  # as Entra's
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256(verifier)) without padding
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_MAX_REDIRECT_URIS = 32


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------- registrations


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


def check_redirect_uri(uri: str) -> str:
    """An absolute https URL (or http on a loopback host, for native and test apps), no fragment, no
    credentials: RFC 6749 3.1.2 and OAuth 2.0 Security BCP 4.1."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as exc:
        raise BadRequest(f"The redirect URI '{uri}' is not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not host or parts.fragment or "#" in uri:
        raise BadRequest(f"The redirect URI '{uri}' must be an absolute http(s) URL without a fragment.")
    if parts.scheme == "http" and not _is_loopback_host(host):
        raise BadRequest(f"The redirect URI '{uri}' must use https (http only on localhost / loopback).")
    if parts.username or parts.password or len(uri) > 2048 or any(c.isspace() for c in uri):
        raise BadRequest(f"The redirect URI '{uri}' may not carry credentials, spaces or exceed 2048 chars.")
    return uri


@dataclass(frozen=True)
class RegisteredClient:
    application_id: str
    client_id: str
    client_secret: str | None  # shown once; None for a public client


async def register_client(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    name: str,
    redirect_uris: list[str],
    public: bool = False,
    grant_types: list[str] | None = None,
    permissions: list[str] | None = None,
) -> RegisteredClient:
    """An app registration that users sign in to. A public client (a SPA or native app) gets no secret and
    may only use the code (with PKCE) and refresh grants."""
    grants = list(dict.fromkeys(grant_types or [AUTHORIZATION_CODE, REFRESH_TOKEN]))
    unknown = sorted(set(grants) - set(GRANT_TYPES))
    if unknown:
        raise BadRequest(f"Unknown grant type(s): {', '.join(unknown)}.")
    if public and CLIENT_CREDENTIALS in grants:
        raise BadRequest("A public client cannot use client credentials (it has no secret).")
    if len(redirect_uris) > _MAX_REDIRECT_URIS:
        raise BadRequest(f"At most {_MAX_REDIRECT_URIS} redirect URIs.")
    uris = [check_redirect_uri(u) for u in dict.fromkeys(redirect_uris)]
    if AUTHORIZATION_CODE in grants and not uris:
        raise BadRequest("The authorization code grant needs at least one redirect URI.")
    perms = check_permissions(permissions or [])
    app = Application(
        id=new_id(),
        app_id=new_id(),
        display_name=name,
        permissions=perms,
        redirect_uris=uris,
        is_public_client=public,
        grant_types=grants,
    )
    details = {"redirectUris": uris, "isFallbackPublicClient": public, "grantTypes": grants}
    secret = await add_application(session, tenant_id, actor, app, with_secret=not public, details=details)
    return RegisteredClient(app.id, app.app_id, secret)


async def grant_admin_consent(
    session: AsyncSession, tenant_id: str, actor: Actor, application_id: str, scopes: list[str]
) -> Consent:
    """An admin's consent for every user of the tenant (Graph's consentType AllPrincipals): users of this
    app see no consent page for these scopes."""
    if await ApplicationRepository(session, tenant_id).get(application_id) is None:
        raise NotFound(f"No application {application_id} in this tenant.")
    consent = await _record_consent(session, tenant_id, application_id, None, scopes)
    await emit(
        session,
        tenant_id,
        actor,
        EventSpec("idp.consent.granted", "application", application_id, {"consentType": "AllPrincipals"}),
    )
    return consent


async def _record_consent(
    session: AsyncSession, tenant_id: str, application_id: str, user_id: str | None, scopes: list[str]
) -> Consent:
    repo = ConsentRepository(session, tenant_id)
    consent = await repo.own(application_id, user_id)
    if consent is None:
        consent = repo.add(
            Consent(application_id=application_id, user_id=user_id, scopes=sorted(set(scopes)))
        )
    else:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
        consent.updated_at = utcnow()
    await session.flush()
    return consent


async def record_user_consent(
    session: AsyncSession, tenant_id: str, application_id: str, user_id: str, scopes: list[str]
) -> None:
    await _record_consent(session, tenant_id, application_id, user_id, scopes)
    await emit(
        session,
        tenant_id,
        Actor(type="user", id=user_id, name=""),
        EventSpec("idp.consent.granted", "application", application_id, {"consentType": "Principal"}),
    )


async def has_consent(
    session: AsyncSession, tenant_id: str, application_id: str, user_id: str, scopes: list[str]
) -> bool:
    """Consented scopes cover the request. openid and offline_access need none (they are the sign-in)."""
    needed = set(scopes) - {"openid", "offline_access"}
    if not needed:
        return True
    granted: set[str] = set()
    for consent in await ConsentRepository(session, tenant_id).for_user(application_id, user_id):
        granted |= set(consent.scopes)
    return needed <= granted


# ---------------------------------------------------------------- clients


async def find_client(session: AsyncSession, tenant_id: str, client_id: str) -> Application | None:
    if not client_id or not is_uuid(client_id):
        return None
    return await ApplicationRepository(session, tenant_id).by_client_id(client_id)


# ---------------------------------------------------------------- authorization requests


@dataclass(frozen=True)
class Scope:
    """A requested scope split the way tokens need it: OpenID Connect scopes, one resource and its
    scopes (bare names mean the first configured audience, as Entra reads them as Graph's)."""

    oidc: tuple[str, ...]
    resource: str
    resource_scopes: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join([*self.oidc, *(f"{self.resource}/{s}" for s in self.resource_scopes)])

    @property
    def scp(self) -> str:
        """The access token's ``scp``: scope names without the resource, as Entra writes them."""
        names = [s for s in self.oidc if s != "offline_access"] + list(self.resource_scopes)
        return " ".join(dict.fromkeys(names))

    @property
    def all(self) -> list[str]:
        return [*self.oidc, *(f"{self.resource}/{s}" for s in self.resource_scopes)]


def parse_scope(raw: str, audiences: list[str]) -> Scope:
    items = [s for s in raw.split(" ") if s]
    if not items:
        raise InvalidScopeError(description="The request must name a scope (for sign-in: 'openid').")
    oidc: list[str] = []
    resources: dict[str, list[str]] = {}
    for item in dict.fromkeys(items):
        if item in OIDC_SCOPES:
            oidc.append(item)
            continue
        resource, _, name = item.rpartition("/")
        resource = resource or audiences[0]
        if resource not in audiences or not _SCOPE_NAME.match(name):
            raise InvalidScopeError(description=f"The scope '{item}' is not served by this authority.")
        resources.setdefault(resource, []).append(name)
    if len(resources) > 1:
        raise InvalidScopeError(description="The scopes must name one resource at most.")
    resource, names = next(iter(resources.items())) if resources else (audiences[0], [])
    return Scope(tuple(oidc), resource, tuple(dict.fromkeys(names)))


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request. ``client`` and ``redirect_uri`` are trusted once this exists:
    every later error may be sent to the redirect URI."""

    client: Application
    redirect_uri: str
    state: str | None
    scope: Scope
    nonce: str | None
    code_challenge: str | None
    prompt: str | None
    max_age: int | None
    grant: Any = None  # Authlib's code grant that validated it, which issues the code (server.py)


class AuthorizationRequestError(Exception):
    """An error that must be shown to the user, never redirected: the client or redirect URI is unknown."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class RedirectableError(Exception):
    """An OAuth error to send back to the (already validated) redirect URI."""

    def __init__(self, error: OAuth2Error, state: str | None) -> None:
        super().__init__(error.description)
        self.error = error
        self.state = state


def check_authorization_request(client: Application, params: dict[str, str], audiences: list[str]) -> Scope:
    """TrustPlane's rules for an authorization request beyond what Authlib's code grant and PKCE extension
    check (the client, the exact redirect URI, response_type, a code_challenge's shape): Entra's scopes, the
    query response mode, S256 named explicitly, PKCE required of a public client, prompt, max_age, nonce.
    Raised errors are sent to the (already validated) redirect URI."""
    if params.get("response_mode", "query") != "query":
        raise InvalidRequestError(description="Only response_mode=query is supported.")
    scope = parse_scope(params.get("scope", ""), audiences)
    challenge = params.get("code_challenge")
    if challenge is None:
        if client.is_public_client:
            raise InvalidRequestError(description="A public client must use PKCE (code_challenge, S256).")
    else:
        if params.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                description="The code_challenge_method must be S256 (plain is refused)."
            )
        if not _PKCE_CHALLENGE.match(challenge):
            raise InvalidRequestError(description="The code_challenge is not a base64url SHA-256 value.")
    prompt = params.get("prompt") or None
    if prompt is not None and prompt not in ("none", "login", "consent", "select_account"):
        raise InvalidRequestError(description=f"The prompt value '{prompt}' is not supported.")
    max_age_raw = params.get("max_age")
    if max_age_raw is not None and (not max_age_raw.isdigit() or len(max_age_raw) > 9):
        raise InvalidRequestError(description="max_age must be a number of seconds.")
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > 512:
        raise InvalidRequestError(description="The nonce is too long (at most 512 characters).")
    return scope


async def store_code(
    session: AsyncSession,
    tenant_id: str,
    request: AuthorizationRequest,
    code: str,
    *,
    user_id: str,
    session_id: str | None,
    auth_time: datetime,
    amr: list[str],
) -> None:
    """An issued code (Authlib's code grant calls this from ``save_authorization_code``), as its digest."""
    now = utcnow()
    AuthorizationCodeRepository(session, tenant_id).add(
        AuthorizationCode(
            code_hash=digest(code),
            application_id=request.client.id,
            user_id=user_id,
            session_id=session_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope.text,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            code_challenge_method="S256" if request.code_challenge else None,
            auth_time=auth_time,
            amr=amr,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    )
    await session.flush()


# ---------------------------------------------------------------- ending grants


async def end_browser_session_grants(
    session: AsyncSession, tenant_id: str, session_id: str, reason: str
) -> int:
    return await GrantRepository(session, tenant_id).revoke_for_session(session_id, reason, utcnow())
