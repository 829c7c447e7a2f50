"""Every query of the alerts part, tenant-scoped through ``TenantRepository``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from trustplane.alerts.models import (
    Activity,
    Alert,
    AlertBaseline,
    AlertPolicySetting,
    WebhookDelivery,
    WebhookSubscription,
)
from trustplane.core.repository import TenantRepository


class _Listing:
    """A page of a filtered list and a count capped at ``cap`` (MCAS's ``moreThanTotal``)."""

    model: Any

    async def page(
        self: Any,
        conditions: Sequence[ColumnElement[bool]],
        order: Sequence[Any],
        skip: int,
        limit: int,
    ) -> list[Any]:
        stmt = self.select().where(*conditions).order_by(*order).offset(skip).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def count_capped(self: Any, conditions: Sequence[ColumnElement[bool]], cap: int) -> int:
        """How many match, counting no further than ``cap`` + 1 (so a large match costs no full count)."""
        inner = self.select(self.model.seq).where(*conditions).limit(cap + 1).subquery()
        return int((await self.session.execute(select(func.count()).select_from(inner))).scalar_one())


class ActivityRepository(_Listing, TenantRepository[Activity]):
    model = Activity

    async def page(
        self,
        conditions: Sequence[ColumnElement[bool]],
        order: Sequence[Any],
        skip: int,
        limit: int,
    ) -> list[Any]:
        """A page as Core rows (every column by name, no ORM identity): a list only renders them."""
        table = Activity.__table__
        stmt = (
            select(table)
            .where(table.c.tenant_id == self.tenant_id, *conditions)
            .order_by(*order)
            .offset(skip)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def existing_parts(self, event_id: str) -> set[int]:
        stmt = self.select(Activity.event_part).where(Activity.event_id == event_id)
        return set((await self.session.execute(stmt)).scalars())

    async def count_recent(self, action_types: list[str], user_id: str, since_ms: int) -> int:
        stmt = self.select(func.count()).where(
            Activity.action_type.in_(action_types),
            Activity.user_id == user_id,
            Activity.timestamp >= since_ms,
        )
        return int((await self.session.execute(stmt)).scalar_one())


class AlertRepository(_Listing, TenantRepository[Alert]):
    model = Alert

    async def open_for(self, policy: str, subject: str) -> Alert | None:
        stmt = self.select().where(
            Alert.policy == policy, Alert.subject == subject, Alert.resolution_status == 0
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def matching(self, conditions: Sequence[ColumnElement[bool]], cap: int) -> list[Alert]:
        stmt = self.select().where(*conditions).order_by(Alert.seq).limit(cap)
        return list((await self.session.execute(stmt)).scalars())

    async def by_ids(self, ids: Sequence[str]) -> list[Alert]:
        stmt = self.select().where(Alert.id.in_(list(ids)))
        return list((await self.session.execute(stmt)).scalars())

    async def set_values(self, alert_ids: Sequence[str], values: dict[str, Any]) -> None:
        await self.session.execute(
            update(Alert)
            .where(Alert.tenant_id == self.tenant_id, Alert.id.in_(list(alert_ids)))
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )


class PolicySettingRepository(TenantRepository[AlertPolicySetting]):
    model = AlertPolicySetting

    async def all(self) -> dict[str, AlertPolicySetting]:
        rows = (await self.session.execute(self.select())).scalars()
        return {row.policy: row for row in rows}

    async def of(self, policy: str) -> AlertPolicySetting | None:
        stmt = self.select().where(AlertPolicySetting.policy == policy)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class BaselineRepository(TenantRepository[AlertBaseline]):
    model = AlertBaseline

    async def of(self, policy: str, subject: str) -> AlertBaseline | None:
        stmt = self.select().where(AlertBaseline.policy == policy, AlertBaseline.subject == subject)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def of_many(self, policy: str, subjects: list[str]) -> dict[str, AlertBaseline]:
        found: dict[str, AlertBaseline] = {}
        for start in range(0, len(subjects), 500):
            stmt = self.select().where(
                AlertBaseline.policy == policy, AlertBaseline.subject.in_(subjects[start : start + 500])
            )
            found.update((row.subject, row) for row in (await self.session.execute(stmt)).scalars())
        return found


class WebhookRepository(TenantRepository[WebhookSubscription]):
    model = WebhookSubscription

    async def all(self) -> list[WebhookSubscription]:
        stmt = self.select().order_by(WebhookSubscription.created_at)
        return list((await self.session.execute(stmt)).scalars())

    async def enabled(self) -> list[WebhookSubscription]:
        stmt = self.select().where(WebhookSubscription.enabled.is_(True))
        return list((await self.session.execute(stmt)).scalars())


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery

    async def for_subscription(self, subscription_id: str, limit: int) -> list[WebhookDelivery]:
        stmt = (
            self.select()
            .where(WebhookDelivery.subscription_id == subscription_id)
            .order_by(WebhookDelivery.created_at.desc())
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())
