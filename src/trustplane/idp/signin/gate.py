"""``sign_in_gate``: what the authorization endpoint asks before it issues a code. With no live browser
session (or ``prompt=login``, or a session older than ``max_age``) it answers a redirect to the sign-in page
carrying the authorize URL as ``return_to``. With a session it treats the request as a sign-in to this app:
identity protection assesses it, conditional access decides for this app with the controls the session
already holds, and the answer is a block page, a step-up (MFA, password change), a fresh sign-in when
``signInFrequency`` says the session's authentication is too old, or ``Authenticated``. A flow the sign-in
pages just finished for this app vouches for the user for five minutes (no second decision, no loop).

``prompt=none`` cannot show a page: the gate raises ``InteractionRequired`` (``error`` is OIDC's
``login_required`` or ``interaction_required``) for the authorization endpoint to send to the redirect URI."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from trustplane.core.clock import to_utc, utcnow
from trustplane.directory.repository import UserRepository
from trustplane.idp import sessions
from trustplane.idp.contracts import Authenticated, ClientRef
from trustplane.idp.signin import pages, service
from trustplane.protection import service as protection


class InteractionRequired(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _frequency(control: dict[str, object] | None) -> timedelta | None:
    """signInFrequency as a maximum age (0 for everyTime), None when there is none."""
    if not control:
        return None
    if control.get("frequencyInterval") == "everyTime":
        return timedelta(0)
    value = float(control.get("value") or 0)  # type: ignore[arg-type]
    return timedelta(days=value) if control.get("type") == "days" else timedelta(hours=value)


async def sign_in_gate(
    request: Request,
    session: AsyncSession,
    *,
    tenant_id: str,
    client: ClientRef,
    prompt: str | None,
    max_age: int | None,
) -> Authenticated | Response:
    now = utcnow()
    segment = pages.tenant_segment(request, tenant_id)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    prompts = set((prompt or "").split())
    browser = await sessions.current_session(session, tenant_id, request.cookies.get(sessions.SESSION_COOKIE))

    flow = await service.flow_for(session, tenant_id, request.cookies.get(pages.FLOW_COOKIE), now)
    if (
        flow is not None
        and flow.stage == "done"
        and flow.client_id == client.client_id
        and browser is not None
        and browser.id == flow.session_id
        and "login" not in prompts
    ):
        # The sign-in just finished for this app vouches for it until the flow expires (five minutes, the
        # clock-skew allowance Entra gives signInFrequency everyTime): the consent round trip and the
        # repeated authorize request are not a second sign-in.
        return Authenticated(
            user_id=browser.user_id,
            session_id=browser.id,
            auth_time=to_utc(browser.auth_time),
            amr=list(browser.amr),
            sign_in_id=flow.sign_in_id,
        )

    async def to_login(user_id: str | None = None) -> Response:
        if "none" in prompts:
            raise InteractionRequired("login_required", "The user must sign in.")
        _, token = await service.start_flow(
            session, tenant_id, return_to=here, client=client, user_id=user_id
        )
        return pages.redirect(pages.login_url(segment, here), request, segment, token)

    if browser is None or "login" in prompts:
        return await to_login()
    if not service.session_is_fresh(browser, max_age, now):
        return await to_login(browser.user_id)

    user = await UserRepository(session, tenant_id).get(browser.user_id)
    if user is None:
        return await to_login()
    facts = pages.facts_of(request)
    assessment = await protection.assess(
        session,
        tenant_id,
        facts.attempt(user.user_principal_name, user, client.client_id, client.display_name, now),
        learn=False,
    )
    sign_in = assessment.sign_in
    decision = await service.decide(
        session,
        tenant_id,
        user,
        sign_in,
        app_id=client.client_id,
        satisfied=frozenset({"mfa"}) if "mfa" in (browser.amr or []) else frozenset(),
        user_risk=assessment.user_risk,
    )
    if decision.outcome == "block":
        sign_in.error_code = service.BLOCKED_BY_CA
        sign_in.failure_reason = "Access has been blocked by Conditional Access policies."
        if "none" in prompts:
            raise InteractionRequired("interaction_required", "Access is blocked by conditional access.")
        return pages.render(
            request,
            "blocked.html",
            segment=segment,
            status=403,
            correlation_id=sign_in.correlation_id,
            app_name=client.display_name,
            request_id=getattr(request.state, "request_id", ""),
            at=now.isoformat(timespec="seconds"),
        )
    frequency = _frequency(decision.session_controls.get("signInFrequency"))
    if frequency is not None and now - to_utc(browser.auth_time) > frequency:
        sign_in.error_code = service.SESSION_EXPIRED
        sign_in.failure_reason = "Session is invalid due to expiration (sign-in frequency)."
        return await to_login(user.id)
    if decision.outcome == "challenge" or (user.force_change_password):
        if "none" in prompts:
            raise InteractionRequired("interaction_required", "The user must complete a sign-in step.")
        flow, token = await service.start_flow(
            session, tenant_id, return_to=here, client=client, user_id=user.id
        )
        flow.amr = list(browser.amr or [])
        flow.auth_at = to_utc(browser.auth_time)
        flow.session_id = browser.id
        flow.sign_in_id = sign_in.id
        outcome = await service.route(session, tenant_id, flow, user, sign_in, decision, now)
        return pages.redirect(pages.stage_url(segment, outcome.next), request, segment, token)
    return Authenticated(
        user_id=user.id,
        session_id=browser.id,
        auth_time=to_utc(browser.auth_time),
        amr=list(browser.amr or []),
        sign_in_id=sign_in.id,
    )
