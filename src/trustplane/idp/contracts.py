"""What the authorization server and the sign-in gate pass each other (the one seam between them).

``authorize`` validates the client, redirect URI, PKCE and scope, then calls
``trustplane.idp.signin.gate.sign_in_gate(request, session, tenant_id=…, client=ClientRef(…), prompt=…,
max_age=…)``. The gate answers either a ``Response`` (login, step-up or block page: returned unchanged) or
``Authenticated`` (the user is signed in and conditional access granted: consent and a code follow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ClientRef:
    """The app a sign-in is for: its client id (appId), its object id and the name shown to the user."""

    client_id: str
    application_id: str
    display_name: str


@dataclass(frozen=True)
class Authenticated:
    """A signed-in user whom conditional access let through for this client."""

    user_id: str
    session_id: str  # the browser session (``idp.sessions.BrowserSession.id``); the ID token's ``sid``
    auth_time: datetime
    amr: list[str] = field(default_factory=list)
    sign_in_id: str | None = None  # the signIn record of this attempt, when one was written
