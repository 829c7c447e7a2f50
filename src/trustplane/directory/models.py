"""Directory tables. Every row carries ``tenant_id``; repositories scope every query by it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, func
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(256))
    # The tenant's primary domain; the token endpoint accepts it in place of the id, as Entra does.
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def tenant_id(self) -> str:
        return self.id


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_principal_name: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))
    given_name: Mapped[str | None] = mapped_column(String(64))
    surname: Mapped[str | None] = mapped_column(String(64))
    mail: Mapped[str | None] = mapped_column(String(320))
    mail_nickname: Mapped[str | None] = mapped_column(String(64))
    account_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    job_title: Mapped[str | None] = mapped_column(String(128))
    department: Mapped[str | None] = mapped_column(String(64))
    office_location: Mapped[str | None] = mapped_column(String(128))
    mobile_phone: Mapped[str | None] = mapped_column(String(64))
    company_name: Mapped[str | None] = mapped_column(String(64))
    employee_id: Mapped[str | None] = mapped_column(String(16))
    employee_type: Mapped[str | None] = mapped_column(String(64))
    city: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str | None] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(128))
    postal_code: Mapped[str | None] = mapped_column(String(40))
    street_address: Mapped[str | None] = mapped_column(String(1024))
    usage_location: Mapped[str | None] = mapped_column(String(2))
    preferred_language: Mapped[str | None] = mapped_column(String(16))
    user_type: Mapped[str] = mapped_column(String(16), default="Member")
    on_premises_immutable_id: Mapped[str | None] = mapped_column(String(256))
    business_phones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    other_mails: Mapped[list[str]] = mapped_column(JSONType, default=list)
    proxy_addresses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    force_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Graph's signInSessionsValidFromDateTime: refresh tokens and delegated access tokens issued before it
    # are refused (continuous access evaluation, idp.revocation); NULL until the first revocation.
    sign_in_sessions_valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Moves on every change through any face (SCIM's ETag); bumped by directory.service in SQL, so
    # concurrent changes never lose an increment.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The provisioning client's own id for the user (SCIM externalId).
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    # SCIM's userName when it is not a userPrincipalName (then the UPN is derived from it); else NULL.
    user_name: Mapped[str | None] = mapped_column(String(256), default=None)
    # SCIM attributes without a column of their own (nickName, addresses, …), kept as sent.
    scim_attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


Index("uq_users_tenant_upn", User.tenant_id, func.lower(User.user_principal_name), unique=True)
Index("ix_users_tenant_id", User.tenant_id, User.id)
Index("ix_users_tenant_mail", User.tenant_id, func.lower(User.mail))
Index("ix_users_tenant_display_name", User.tenant_id, func.lower(User.display_name))
Index("ix_users_tenant_created", User.tenant_id, User.created_at)
Index("ix_users_tenant_external_id", User.tenant_id, User.external_id)
Index("uq_users_tenant_user_name", User.tenant_id, func.lower(User.user_name), unique=True)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(String(1024))
    mail: Mapped[str | None] = mapped_column(String(320))
    mail_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mail_nickname: Mapped[str] = mapped_column(String(64))
    security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    visibility: Mapped[str | None] = mapped_column(String(16))
    classification: Mapped[str | None] = mapped_column(String(64))
    is_assignable_to_role: Mapped[bool | None] = mapped_column(Boolean, default=None)
    group_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    proxy_addresses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # as User.version
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    scim_attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


Index("ix_groups_tenant_id", Group.tenant_id, Group.id)
Index("ix_groups_tenant_display_name", Group.tenant_id, func.lower(Group.display_name))
Index("ix_groups_tenant_mail", Group.tenant_id, func.lower(Group.mail))
Index("ix_groups_tenant_created", Group.tenant_id, Group.created_at)
Index("ix_groups_tenant_external_id", Group.tenant_id, Group.external_id)


class Membership(Base):
    """One edge: ``member_id`` (a user or a group) is a direct member of ``group_id``."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_member", "member_id", "group_id"),)

    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_type: Mapped[str] = mapped_column(String(8))  # "user" | "group"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryValue(Base):
    """One value of a multi-valued property (proxyAddresses, otherMails, groupTypes, …), so that
    OData ``any()`` filters compile to an indexed EXISTS instead of scanning JSON."""

    __tablename__ = "directory_values"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_id: Mapped[str] = mapped_column(String(36), index=True)
    attr: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(1024))


Index(
    "ix_directory_values_lookup",
    DirectoryValue.tenant_id,
    DirectoryValue.attr,
    func.lower(DirectoryValue.value),
)


class Application(Base):
    """An app registration: a client that signs in with a client id and secret and holds app permissions."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    display_name: Mapped[str] = mapped_column(String(256))
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Single sign-on (idp.oauth): where codes and logouts may be sent (exact match, nothing else), whether
    # the client is public (no secret: PKCE required) and which grants it may use.
    redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]")
    is_public_client: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    grant_types: Mapped[list[str]] = mapped_column(
        JSONType, default=lambda: ["client_credentials"], server_default='["client_credentials"]'
    )


class ClientSecret(Base):
    __tablename__ = "client_secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    hint: Mapped[str] = mapped_column(String(8))
    secret_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AuditEntry(Base):
    """The audit log, written from events by an idempotent job handler (one entry per event)."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    activity: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(36))
    actor: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[str] = mapped_column(String(16), default="success")
    activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_audit_log_tenant_time", AuditEntry.tenant_id, AuditEntry.activity_at)
