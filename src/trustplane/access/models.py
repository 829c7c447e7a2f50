"""Conditional access tables: policies and named locations kept as their canonical Graph JSON, with the
columns lists filter and sort on, and one revision counter per tenant that every change bumps (in the same
transaction), so any server process can tell whether its compiled policy index is current."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from trustplane.core.clock import utcnow
from trustplane.core.db import Base, JSONType, UTCDateTime
from trustplane.core.ids import new_id


class ConditionalAccessPolicy(Base):
    __tablename__ = "ca_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(40))
    template_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # conditions, grantControls, sessionControls, description: the canonical Graph JSON (schemas.py).
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


Index("ix_ca_policies_tenant_id", ConditionalAccessPolicy.tenant_id, ConditionalAccessPolicy.id)
Index(
    "ix_ca_policies_tenant_display_name",
    ConditionalAccessPolicy.tenant_id,
    func.lower(ConditionalAccessPolicy.display_name),
)


class NamedLocation(Base):
    __tablename__ = "ca_named_locations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "ip" | "country"
    display_name: Mapped[str] = mapped_column(String(256))
    is_trusted: Mapped[bool] = mapped_column(default=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


Index("ix_ca_named_locations_tenant_id", NamedLocation.tenant_id, NamedLocation.id)
Index(
    "ix_ca_named_locations_tenant_display_name",
    NamedLocation.tenant_id,
    func.lower(NamedLocation.display_name),
)


class PolicyRevision(Base):
    """Bumped by every policy or named-location change of the tenant."""

    __tablename__ = "ca_revisions"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
