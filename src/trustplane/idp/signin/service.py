"""The sign-in rules, once. A browser sign-in is a flow (``SignInFlow``) behind a pre-auth cookie; each
step (password, passkey, TOTP or recovery code, TOTP enrolment, password change) moves it on. The first
factor's success builds the sign-in context, identity protection assesses it (``protection.service.assess``,
which writes the signIn record), conditional access decides (``access.service.evaluate_sign_in``) and the
decision is written onto the record (``protection.service.record_decision``). Unmet grant controls are asked
for in Entra's prompt order; after each one the decision is taken again with the controls now satisfied,
and the same signIn record is updated. Never commits; no HTTP types."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.access import service as access
from trustplane.access.evaluator import Decision
from trustplane.auth.secrets import hash_password
from trustplane.core.clock import to_utc, utcnow
from trustplane.core.errors import BadRequest
from trustplane.core.events import Actor
from trustplane.core.ids import new_id
from trustplane.directory import service as directory
from trustplane.directory.models import User
from trustplane.directory.repository import UserRepository
from trustplane.idp import sessions
from trustplane.idp.contracts import ClientRef
from trustplane.idp.signin import lockout, password, recovery, totp, webauthn
from trustplane.idp.signin.aaguids import DEFAULT_ALLOWED
from trustplane.idp.signin.models import SignInFlow, SignInPolicy, TotpCredential, WebAuthnCredential
from trustplane.idp.signin.repository import (
    FlowRepository,
    RecoveryCodeRepository,
    SignInPolicyRepository,
    TotpRepository,
    WebAuthnRepository,
)
from trustplane.protection import service as protection
from trustplane.protection.models import SignIn
from trustplane.protection.repository import SignInRepository

FLOW_LIFETIME = timedelta(minutes=15)
HANDOFF_LIFETIME = timedelta(minutes=5)  # a finished flow vouches for its return_to this long

# Entra's sign-in error codes, as the signIn record shows them.
INVALID_PASSWORD = 50126
LOCKED = 50053
DISABLED = 50057
MFA_REQUIRED = 50074
PASSWORD_CHANGE_REQUIRED = 50055
BLOCKED_BY_CA = 53003
SESSION_EXPIRED = 50133  # signInFrequency: the session's authentication is too old
CONTROL_UNAVAILABLE = 53000  # a control the browser cannot satisfy here (e.g. a compliant device)

# amr values of a second factor (added to a session being stepped up, with "mfa").
SECOND_FACTORS = ("otp", "fido")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the request says about where the attempt comes from."""

    ip_address: str | None
    user_agent: str | None

    def attempt(
        self, upn: str, user: User | None, app_id: str | None, app_display_name: str | None, at: datetime
    ) -> protection.SignInAttempt:
        """The sign-in attempt identity protection assesses, with a fresh correlation id; ``user`` is the
        directory user this transaction read (identity protection does not read it again)."""
        return protection.SignInAttempt(
            user_principal_name=upn,
            at=at,
            ip_address=self.ip_address,
            user_id=user.id if user is not None else None,
            user=user,
            user_agent=self.user_agent,
            app_id=app_id,
            app_display_name=app_display_name,
            correlation_id=new_id(),
        )


@dataclass(slots=True)
class Outcome:
    """Where a step leaves the flow. ``next`` is one of: ``done`` (a browser session was created:
    ``cookie``), ``mfa``, ``enrol_totp``, ``password_change``, ``block`` (with ``correlation_id``), or
    ``retry`` (the same page again with ``error``)."""

    next: str
    error: str | None = None
    correlation_id: str | None = None
    cookie: str | None = None
    session_id: str | None = None
    blocked_by: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- flows and CSRF


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(flow_token: str) -> str:
    """The synchronizer token for every form of a flow: derived from the pre-auth cookie, so a page that
    cannot read the cookie cannot forge it, and nothing else needs storing."""
    return hmac.new(flow_token.encode(), b"trustplane-signin-csrf", hashlib.sha256).hexdigest()


def csrf_valid(flow_token: str | None, submitted: str | None) -> bool:
    if not flow_token or not submitted:
        return False
    return hmac.compare_digest(csrf_token(flow_token), submitted)


async def start_flow(
    session: AsyncSession,
    tenant_id: str,
    *,
    return_to: str | None,
    client: ClientRef | None = None,
    user_id: str | None = None,
    now: datetime | None = None,
) -> tuple[SignInFlow, str]:
    """A new flow and its cookie value (only the hash is stored)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    flows = FlowRepository(session, tenant_id)
    await flows.purge_expired(now)
    flow = flows.add(
        SignInFlow(
            id=new_id(),
            token_hash=_digest(token),
            stage="password",
            user_id=user_id,
            return_to=return_to,
            client_id=client.client_id if client else None,
            application_id=client.application_id if client else None,
            app_display_name=client.display_name if client else None,
            amr=[],
            created_at=now,
            expires_at=now + FLOW_LIFETIME,
        )
    )
    await session.flush()
    return flow, token


async def flow_for(
    session: AsyncSession, tenant_id: str, token: str | None, now: datetime | None = None
) -> SignInFlow | None:
    if not token or len(token) > 128:
        return None
    return await FlowRepository(session, tenant_id).by_token_hash(_digest(token), now or utcnow())


async def policy_of(session: AsyncSession, tenant_id: str) -> SignInPolicy:
    return await SignInPolicyRepository(session, tenant_id).current() or SignInPolicy(
        tenant_id=tenant_id, allowed_aaguids=None, lockout_threshold=10, lockout_seconds=60
    )


async def set_policy(
    session: AsyncSession,
    tenant_id: str,
    *,
    allowed_aaguids: list[str] | None = None,
    lockout_threshold: int | None = None,
    lockout_seconds: int | None = None,
    default_aaguids: bool = False,
) -> SignInPolicy:
    """Change the tenant's sign-in policy (``allowed_aaguids`` [] allows any model, None keeps it;
    ``default_aaguids`` goes back to the shipped list)."""
    repo = SignInPolicyRepository(session, tenant_id)
    policy = await repo.current()
    if policy is None:
        policy = repo.add(SignInPolicy(allowed_aaguids=None, lockout_threshold=10, lockout_seconds=60))
    if default_aaguids:
        policy.allowed_aaguids = None
    if allowed_aaguids is not None:
        cleaned = []
        for value in allowed_aaguids:
            text = str(value).strip().lower()
            if len(text) != 36 or text.count("-") != 4 or any(c not in "0123456789abcdef-" for c in text):
                raise BadRequest(f"'{value}' is not an AAGUID (a GUID such as 2fc0579f-8113-47ea-...).")
            cleaned.append(text)
        policy.allowed_aaguids = cleaned
    if lockout_threshold is not None:
        if not 1 <= lockout_threshold <= 1000:
            raise BadRequest("The lockout threshold must be between 1 and 1000.")
        policy.lockout_threshold = lockout_threshold
    if lockout_seconds is not None:
        if not 1 <= lockout_seconds <= 3600:
            raise BadRequest("The lockout duration must be between 1 and 3600 seconds.")
        policy.lockout_seconds = lockout_seconds
    policy.updated_at = utcnow()
    await session.flush()
    return policy


def allowed_aaguids(policy: SignInPolicy, extra: list[str]) -> frozenset[str] | None:
    """The models that may register: the tenant's list (or the default), plus those the deployment adds
    (settings ``webauthn_extra_aaguids``, e.g. a test browser's virtual authenticator); None allows any."""
    if policy.allowed_aaguids is not None and not policy.allowed_aaguids:
        return None
    base = policy.allowed_aaguids if policy.allowed_aaguids is not None else list(DEFAULT_ALLOWED)
    return frozenset(a.lower() for a in [*base, *extra])


# ---------------------------------------------------------------- the decision


def _amr_controls(amr: list[str]) -> frozenset[str]:
    satisfied = set()
    if "mfa" in amr:
        satisfied.add("mfa")
    if "pwdchange" in amr:
        satisfied.update(("passwordChange", "riskRemediation"))
    return frozenset(satisfied)


async def _has_second_factor(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    if await TotpRepository(session, tenant_id).for_user(user_id) is not None:
        return True
    return bool(await WebAuthnRepository(session, tenant_id).for_user(user_id))


async def decide(
    session: AsyncSession,
    tenant_id: str,
    user: User,
    sign_in: SignIn,
    *,
    app_id: str | None,
    satisfied: frozenset[str],
    user_risk: str | None = None,
) -> Decision:
    """Conditional access for one attempt, written onto its signIn record."""
    context = await access.user_sign_in_context(
        session,
        tenant_id,
        user.id,
        app_id=app_id,
        ip_address=sign_in.ip_address,
        country=sign_in.country,
        sign_in_risk=sign_in.risk_level_during_sign_in,
        user_risk=user_risk,
        satisfied_controls=satisfied,
        client_app_type="browser",
    )
    decision = await access.evaluate_sign_in(session, tenant_id, context)
    await protection.record_decision(session, tenant_id, sign_in, decision)
    return decision


async def route(
    session: AsyncSession,
    tenant_id: str,
    flow: SignInFlow,
    user: User,
    sign_in: SignIn,
    decision: Decision,
    now: datetime,
) -> Outcome:
    """The next stage from a decision: block, the first unmet control in prompt order, a pending forced
    password change, or done (a browser session)."""
    if decision.outcome == "block":
        sign_in.error_code = BLOCKED_BY_CA
        sign_in.failure_reason = "Access has been blocked by Conditional Access policies."
        flow.stage = "blocked"
        return Outcome("block", correlation_id=sign_in.correlation_id, blocked_by=list(decision.blocked_by))
    for control in decision.required_controls:
        if control == "mfa":
            sign_in.error_code = MFA_REQUIRED
            sign_in.failure_reason = "Strong authentication is required."
            has = await _has_second_factor(session, tenant_id, user.id)
            flow.stage = "mfa" if has else "enrol_totp"
            return Outcome(flow.stage)
        if control in ("passwordChange", "riskRemediation"):
            sign_in.error_code = PASSWORD_CHANGE_REQUIRED
            sign_in.failure_reason = "The user is required to change their password."
            flow.stage = "password_change"
            return Outcome("password_change")
        sign_in.error_code = CONTROL_UNAVAILABLE
        sign_in.failure_reason = f"The grant control '{control}' cannot be satisfied from this browser."
        flow.stage = "blocked"
        return Outcome("block", correlation_id=sign_in.correlation_id)
    if user.force_change_password and "pwdchange" not in flow.amr:
        sign_in.error_code = PASSWORD_CHANGE_REQUIRED
        sign_in.failure_reason = "The user is required to change their password."
        flow.stage = "password_change"
        return Outcome("password_change")
    sign_in.error_code = 0
    sign_in.failure_reason = None
    await protection.learn(session, tenant_id, sign_in)  # only a sign-in let through teaches the profile
    amr = [a for a in flow.amr if a != "pwdchange"]
    existing = (
        await sessions.BrowserSessionRepository(session, tenant_id).get(flow.session_id)
        if flow.session_id
        else None
    )
    if existing is not None and existing.revoked_at is None and existing.user_id == user.id:
        # A step-up of a live session: the new factor joins it (same sid, same cookie).
        for method in amr:
            if method in SECOND_FACTORS and method not in existing.amr:
                await sessions.add_mfa(session, existing, method, now=now)
        browser, cookie = existing, None
    else:
        browser, cookie = await sessions.create_session(session, tenant_id, user.id, amr=amr, now=now)
    flow.stage = "done"
    flow.session_id = browser.id
    flow.auth_at = now
    flow.expires_at = now + HANDOFF_LIFETIME
    return Outcome("done", cookie=cookie, session_id=browser.id)


async def _again(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, user: User, now: datetime
) -> Outcome:
    """After a step: decide again on the flow's signIn record with what is satisfied now. A step-up of a
    live session outside any app's sign-in (the security-info pages) has no record: the factor joins the
    session, which conditional access already let in."""
    if flow.sign_in_id is None and flow.session_id is not None:
        existing = await sessions.BrowserSessionRepository(session, tenant_id).get(flow.session_id)
        if existing is None or existing.revoked_at is not None or existing.user_id != user.id:
            return Outcome("retry", error="Your sign-in expired. Please sign in again.")
        for method in flow.amr:
            if method in SECOND_FACTORS and method not in existing.amr:
                await sessions.add_mfa(session, existing, method, now=now)
        flow.stage = "done"
        flow.expires_at = now + HANDOFF_LIFETIME
        return Outcome("done", session_id=existing.id)
    sign_in = await SignInRepository(session, tenant_id).get(flow.sign_in_id or "")
    if sign_in is None:  # the record went (tenant purge); the flow cannot finish
        flow.stage = "password"
        return Outcome("retry", error="Your sign-in expired. Please sign in again.")
    decision = await decide(
        session,
        tenant_id,
        user,
        sign_in,
        app_id=flow.client_id,
        satisfied=_amr_controls(flow.amr),
    )
    return await route(session, tenant_id, flow, user, sign_in, decision, now)


async def _flow_user(session: AsyncSession, tenant_id: str, flow: SignInFlow) -> User | None:
    if flow.user_id is None:
        return None
    user = await UserRepository(session, tenant_id).get(flow.user_id)
    return user if user is not None and user.account_enabled else None


# ---------------------------------------------------------------- first factor


async def password_step(
    session: AsyncSession,
    tenant_id: str,
    flow: SignInFlow,
    user_principal_name: str,
    secret: str,
    facts: RequestFacts,
    *,
    now: datetime | None = None,
) -> Outcome:
    now = now or utcnow()
    upn = user_principal_name.strip()
    if not upn or not secret or len(upn) > 320 or len(secret) > 256:
        return Outcome("retry", error="Enter your user name and password.")
    user = await UserRepository(session, tenant_id).by_upn(upn)
    policy = await policy_of(session, tenant_id)
    subjects = await lockout.subjects_for(
        session, tenant_id, user.id if user else None, facts.ip_address, now
    )
    attempt = facts.attempt(upn, user, flow.client_id, flow.app_display_name, now)
    locked = await lockout.locked(session, tenant_id, subjects, now)
    if locked is not None:
        await protection.assess(
            session,
            tenant_id,
            dataclasses.replace(attempt, error_code=LOCKED, failure_reason=f"Smart lockout ({locked})."),
            learn=False,
        )
        return Outcome(
            "retry",
            error=(
                "Too many sign-in attempts from your network. Try again later."
                if locked == "ip"
                else "Your account is temporarily locked to prevent unauthorized use. Try again later."
            ),
        )
    valid = await password.verify_password(user.password_hash if user else None, secret)
    if not valid or user is None:
        await lockout.record_failure(session, tenant_id, subjects, policy, now)
        await protection.assess(
            session,
            tenant_id,
            dataclasses.replace(
                attempt,
                error_code=INVALID_PASSWORD,
                failure_reason="Invalid username or password.",
                password_valid=False,
            ),
            learn=False,
        )
        return Outcome("retry", error="Your user name or password is incorrect.")
    if not user.account_enabled:
        await protection.assess(
            session,
            tenant_id,
            dataclasses.replace(
                attempt, error_code=DISABLED, failure_reason="The account is disabled.", password_valid=True
            ),
            learn=False,
        )
        return Outcome("retry", error="Your account is disabled. Contact your administrator.")
    await lockout.record_success(session, tenant_id, subjects)
    if password.needs_rehash(user.password_hash or ""):
        user.password_hash = await _rehash(secret)
    assessment = await protection.assess(
        session,
        tenant_id,
        dataclasses.replace(attempt, password_valid=True, password=secret),
        learn=False,
    )
    flow.user_id = user.id
    flow.amr = ["pwd"]
    flow.auth_at = now
    flow.sign_in_id = assessment.sign_in.id
    decision = await decide(
        session,
        tenant_id,
        user,
        assessment.sign_in,
        app_id=flow.client_id,
        satisfied=frozenset(),
        user_risk=assessment.user_risk,
    )
    return await route(session, tenant_id, flow, user, assessment.sign_in, decision, now)


async def _rehash(secret: str) -> str:
    return await asyncio.to_thread(hash_password, secret)


# ---------------------------------------------------------------- second factors


async def totp_step(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, code: str, *, now: datetime | None = None
) -> Outcome:
    now = now or utcnow()
    user = await _flow_user(session, tenant_id, flow)
    if user is None or flow.stage != "mfa":
        return Outcome("retry", error="Your sign-in expired. Please sign in again.")
    credential = await TotpRepository(session, tenant_id).for_user(user.id)
    step = totp.matching_step(credential.secret, code, now, credential.last_step) if credential else None
    if credential is None or step is None:
        return Outcome("retry", error="That code is not right. Enter the current code from your app.")
    credential.last_step = step
    flow.amr = [*flow.amr, "otp", "mfa"]
    return await _again(session, tenant_id, flow, user, now)


async def recovery_step(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, code: str, *, now: datetime | None = None
) -> Outcome:
    now = now or utcnow()
    user = await _flow_user(session, tenant_id, flow)
    if user is None or flow.stage != "mfa":
        return Outcome("retry", error="Your sign-in expired. Please sign in again.")
    row = await RecoveryCodeRepository(session, tenant_id).unused(user.id, recovery.code_hash(code))
    if row is None:
        return Outcome("retry", error="That recovery code is not valid or was already used.")
    row.used_at = now
    flow.amr = [*flow.amr, "otp", "mfa"]  # a recovery code is a one-time password (RFC 8176 "otp")
    return await _again(session, tenant_id, flow, user, now)


async def begin_totp_enrolment(
    session: AsyncSession, tenant_id: str, flow: SignInFlow
) -> tuple[str, str] | None:
    """(secret, otpauth URI) to show; the same secret until the user confirms it."""
    user = await _flow_user(session, tenant_id, flow)
    if user is None or flow.stage not in ("enrol_totp", "security_info"):
        return None
    if flow.pending_totp_secret is None:
        flow.pending_totp_secret = totp.new_secret()
        await session.flush()
    return flow.pending_totp_secret, totp.provisioning_uri(flow.pending_totp_secret, user.user_principal_name)


async def confirm_totp_enrolment(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, code: str, *, now: datetime | None = None
) -> tuple[Outcome, list[str]]:
    """Prove the new secret with a code: the credential is saved, fresh recovery codes are issued (shown
    once), and the flow goes on (MFA is now satisfied)."""
    now = now or utcnow()
    user = await _flow_user(session, tenant_id, flow)
    if user is None or flow.stage not in ("enrol_totp", "security_info") or not flow.pending_totp_secret:
        return Outcome("retry", error="Your sign-in expired. Please sign in again."), []
    step = totp.matching_step(flow.pending_totp_secret, code, now)
    if step is None:
        return Outcome("retry", error="That code is not right. Enter the current code from your app."), []
    repo = TotpRepository(session, tenant_id)
    existing = await repo.for_user(user.id)
    if existing is not None:
        existing.secret, existing.last_step, existing.created_at = flow.pending_totp_secret, step, now
    else:
        repo.add(TotpCredential(user_id=user.id, secret=flow.pending_totp_secret, last_step=step))
    flow.pending_totp_secret = None
    codes = await issue_recovery_codes(session, tenant_id, user.id)
    if flow.stage == "security_info":
        # Proving the new authenticator is a second factor: the session it was added from now has one.
        browser = (
            await sessions.BrowserSessionRepository(session, tenant_id).get(flow.session_id)
            if flow.session_id
            else None
        )
        if browser is not None and browser.user_id == user.id and browser.revoked_at is None:
            await sessions.add_mfa(session, browser, "otp", now=now)
        await session.flush()
        return Outcome("security_info"), codes
    flow.amr = [*flow.amr, "otp", "mfa"]
    return await _again(session, tenant_id, flow, user, now), codes


async def issue_recovery_codes(session: AsyncSession, tenant_id: str, user_id: str) -> list[str]:
    codes = recovery.new_codes()
    await RecoveryCodeRepository(session, tenant_id).replace_all(
        user_id, [recovery.code_hash(c) for c in codes]
    )
    await session.flush()
    return codes


async def password_change_step(
    session: AsyncSession,
    tenant_id: str,
    flow: SignInFlow,
    current: str,
    new: str,
    confirm: str,
    *,
    now: datetime | None = None,
) -> Outcome:
    now = now or utcnow()
    user = await _flow_user(session, tenant_id, flow)
    if user is None or flow.stage != "password_change":
        return Outcome("retry", error="Your sign-in expired. Please sign in again.")
    if not await password.verify_password(user.password_hash, current):
        return Outcome("retry", error="Your current password is not right.")
    if new != confirm:
        return Outcome("retry", error="The new passwords do not match.")
    if new == current:
        return Outcome("retry", error="Choose a password you have not used here before.")
    if len(new) > 256:
        return Outcome("retry", error="The new password is too long (256 characters at most).")
    actor = Actor(type="user", id=user.id, name=user.user_principal_name)
    try:
        await directory.update_user(
            session, tenant_id, actor, user.id, {"force_change_password": False}, password=new
        )
    except BadRequest as exc:
        return Outcome("retry", error=exc.message)
    if await protection.current_user_risk(session, tenant_id, user.id) != "none":
        # A change made after MFA (risk policies ask for both) remediates the user's risk, as Entra does.
        if "mfa" in flow.amr:
            await protection.remediate(session, tenant_id, actor, user.id)
    flow.amr = [*flow.amr, "pwdchange"]
    return await _again(session, tenant_id, flow, user, now)


# ---------------------------------------------------------------- passkeys


async def passkey_options(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, rp: webauthn.RelyingParty
) -> str:
    """Assertion options: for a second factor the user's own credentials; for a first factor (passkey
    sign-in) any discoverable credential."""
    allowed: list[WebAuthnCredential] = []
    if flow.stage == "mfa" and flow.user_id:
        allowed = list(await WebAuthnRepository(session, tenant_id).for_user(flow.user_id))
    options, challenge = webauthn.authentication_options(rp, allowed)
    flow.webauthn_challenge = challenge
    await session.flush()
    return options


async def passkey_step(
    session: AsyncSession,
    tenant_id: str,
    flow: SignInFlow,
    body: str,
    rp: webauthn.RelyingParty,
    facts: RequestFacts,
    *,
    now: datetime | None = None,
) -> Outcome:
    """A passkey assertion, as the first factor (stage password: a passwordless sign-in, which satisfies
    MFA) or as the second (stage mfa)."""
    now = now or utcnow()
    challenge = flow.webauthn_challenge
    flow.webauthn_challenge = None  # one answer per challenge
    if not challenge or flow.stage not in ("password", "mfa"):
        return Outcome("retry", error="Start the passkey sign-in again.")
    try:
        credential, raw_id = webauthn.credential_id_of(body)
    except webauthn.WebAuthnError as exc:
        return Outcome("retry", error=str(exc))
    stored = await WebAuthnRepository(session, tenant_id).by_credential_id(raw_id)
    if stored is None or (flow.stage == "mfa" and stored.user_id != flow.user_id):
        return Outcome("retry", error="This passkey is not registered here.")
    try:
        stored.sign_count = webauthn.verify_authentication(rp, challenge, credential, stored)
    except webauthn.WebAuthnError as exc:
        return Outcome("retry", error=str(exc))
    stored.last_used_at = now
    user = await UserRepository(session, tenant_id).get(stored.user_id)
    if user is None or not user.account_enabled:
        return Outcome("retry", error="Your account is disabled. Contact your administrator.")
    if flow.stage == "mfa":
        flow.amr = [*flow.amr, "fido", "mfa"]
        return await _again(session, tenant_id, flow, user, now)
    assessment = await protection.assess(
        session,
        tenant_id,
        facts.attempt(user.user_principal_name, user, flow.client_id, flow.app_display_name, now),
        learn=False,
    )
    flow.user_id = user.id
    flow.amr = ["fido", "mfa"]
    flow.auth_at = now
    flow.sign_in_id = assessment.sign_in.id
    decision = await decide(
        session,
        tenant_id,
        user,
        assessment.sign_in,
        app_id=flow.client_id,
        satisfied=frozenset({"mfa"}),
        user_risk=assessment.user_risk,
    )
    return await route(session, tenant_id, flow, user, assessment.sign_in, decision, now)


async def passkey_registration_options(
    session: AsyncSession, tenant_id: str, flow: SignInFlow, user: User, rp: webauthn.RelyingParty
) -> str:
    existing = list(await WebAuthnRepository(session, tenant_id).for_user(user.id))
    options, challenge = webauthn.registration_options(
        rp, user.id, user.user_principal_name, user.display_name or "", existing
    )
    flow.webauthn_challenge = challenge
    await session.flush()
    return options


async def register_passkey(
    session: AsyncSession,
    tenant_id: str,
    flow: SignInFlow,
    user: User,
    body: str,
    name: str,
    rp: webauthn.RelyingParty,
    extra_aaguids: list[str],
) -> WebAuthnCredential:
    """Verify a registration against the tenant's attestation policy and store the credential."""
    challenge = flow.webauthn_challenge
    flow.webauthn_challenge = None
    if not challenge:
        raise webauthn.WebAuthnError("Start the passkey registration again.")
    allowed = allowed_aaguids(await policy_of(session, tenant_id), extra_aaguids)
    new = webauthn.verify_registration(rp, challenge, body, allowed)
    repo = WebAuthnRepository(session, tenant_id)
    if await repo.by_credential_id(new.credential_id) is not None:
        raise webauthn.WebAuthnError("This passkey is already registered.")
    credential = repo.add(
        WebAuthnCredential(
            user_id=user.id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            aaguid=new.aaguid,
            attestation_format=new.fmt,
            transports=new.transports,
            display_name=(name.strip() or DEFAULT_ALLOWED.get(new.aaguid) or "Passkey")[:128],
            backed_up=new.backed_up,
        )
    )
    await session.flush()
    return credential


# ---------------------------------------------------------------- security info (signed in)


async def start_step_up(
    session: AsyncSession, tenant_id: str, browser: sessions.BrowserSession, return_to: str
) -> tuple[SignInFlow, str]:
    """A flow asking the signed-in user for a second factor before their security info changes (a password
    alone must not be enough to add a method when the user has one)."""
    flow, token = await start_flow(session, tenant_id, return_to=return_to, user_id=browser.user_id)
    flow.stage = "mfa"
    flow.amr = list(browser.amr or [])
    flow.session_id = browser.id
    return flow, token


async def has_second_factor(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    return await _has_second_factor(session, tenant_id, user_id)


async def security_info(session: AsyncSession, tenant_id: str, user_id: str) -> dict[str, Any]:
    return {
        "totp": await TotpRepository(session, tenant_id).for_user(user_id) is not None,
        "passkeys": list(await WebAuthnRepository(session, tenant_id).for_user(user_id)),
        "recovery_codes_left": await RecoveryCodeRepository(session, tenant_id).count_unused(user_id),
    }


def session_is_fresh(browser: sessions.BrowserSession, max_age_seconds: float | None, now: datetime) -> bool:
    if max_age_seconds is None:
        return True
    return (now - to_utc(browser.auth_time)).total_seconds() <= max_age_seconds
