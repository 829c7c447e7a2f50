"""Sign-in tables: the pre-authentication flow (one per browser sign-in, keyed by the hash of its cookie),
smart-lockout counters, TOTP and WebAuthn credentials, recovery codes and the tenant's sign-in policy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id


class SignInFlow(Base):
    """One browser sign-in in progress. The browser holds a random token in the pre-auth cookie; only its
    SHA-256 is stored. ``stage`` is what the flow waits for next."""

    __tablename__ = "sign_in_flows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    stage: Mapped[str] = mapped_column(String(24), default="password")
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    return_to: Mapped[str | None] = mapped_column(String(4096), default=None)
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    application_id: Mapped[str | None] = mapped_column(String(64), default=None)
    app_display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    auth_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The TOTP secret offered during enrolment, until the user proves it with a code.
    pending_totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    webauthn_challenge: Mapped[str | None] = mapped_column(String(128), default=None)
    sign_in_id: Mapped[str | None] = mapped_column(String(36), default=None)
    session_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


Index("ix_sign_in_flows_tenant_expires", SignInFlow.tenant_id, SignInFlow.expires_at)


class LockoutCounter(Base):
    """Failed first factors for one subject: ``ip:<address>`` (every account tried from that address) or
    ``user:<id>:familiar`` / ``user:<id>:unfamiliar`` (the account, split by whether the address is one the
    user signed in from before — smart lockout)."""

    __tablename__ = "sign_in_lockouts"
    __table_args__ = (UniqueConstraint("tenant_id", "subject", name="uq_sign_in_lockouts_subject"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(128))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # how many times locked: the next lasts longer


class TotpCredential(Base):
    """A user's authenticator app. The shared secret must be readable to check codes, so it is stored as is
    (as every TOTP verifier does); ``last_step`` refuses a code's reuse within its window."""

    __tablename__ = "totp_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", name="uq_totp_credentials_user"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret: Mapped[str] = mapped_column(String(64))
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebAuthnCredential(Base):
    """A passkey or security key (WebAuthn public-key credential) registered to a user."""

    __tablename__ = "webauthn_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "credential_id", name="uq_webauthn_credentials_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400))  # base64url, as the browser sends it
    public_key: Mapped[str] = mapped_column(Text)  # base64url COSE key
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(32))
    transports: Mapped[list[str]] = mapped_column(JSONType, default=list)
    display_name: Mapped[str] = mapped_column(String(128))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RecoveryCode(Base):
    """One single-use recovery code (80 random bits, so its SHA-256 is enough at rest)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("tenant_id", "code_hash", name="uq_recovery_codes_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInPolicy(Base):
    """The tenant's sign-in settings: which authenticator models (AAGUIDs) may register, and smart lockout's
    threshold and first lockout duration. No row means the defaults."""

    __tablename__ = "sign_in_policies"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    # None: the shipped default list (signin/aaguids.py); [] allows any authenticator.
    allowed_aaguids: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    lockout_threshold: Mapped[int] = mapped_column(Integer, default=10)
    lockout_seconds: Mapped[int] = mapped_column(Integer, default=60)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def id(self) -> str:
        return self.tenant_id
