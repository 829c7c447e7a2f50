"""How Graph's wire properties map onto the directory: one table per entity type, used to parse request
bodies, render responses, honour ``$select`` and build the OData field map. The rules stay in the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from trustplane.core.clock import iso_z
from trustplane.core.errors import BadRequest
from trustplane.directory.models import DirectoryValue, Group, User
from trustplane.graph.odata import CollectionField, Field


@dataclass(frozen=True)
class Prop:
    wire: str
    attr: str
    type: str = "string"  # string | boolean | datetime | collection | object (computed, read-only)
    writable: bool = True
    filterable: bool = True
    orderable: bool = False
    searchable: bool = False
    default: bool = True  # returned when no $select is given
    compute: Callable[[Any], Any] | None = None  # for "object": builds the wire value from the row


@dataclass(frozen=True)
class EntityType:
    name: str  # e.g. "user"
    model: type[Any]
    props: tuple[Prop, ...]
    default_order: str | None = None  # an $orderby applied when the request gives none

    @property
    def odata_type(self) -> str:
        return f"#microsoft.graph.{self.name}"

    @cached_property
    def by_wire(self) -> dict[str, Prop]:
        return {p.wire: p for p in self.props}

    @cached_property
    def by_lower(self) -> dict[str, Prop]:
        return {p.wire.lower(): p for p in self.props}

    @cached_property
    def default_select(self) -> list[str]:
        return [p.wire for p in self.props if p.default]

    @cached_property
    def fields(self) -> dict[str, Field | CollectionField]:
        fields: dict[str, Field | CollectionField] = {}
        for p in self.props:
            if p.type == "object":
                continue  # computed values are not columns
            if p.type == "collection":
                fields[p.wire] = CollectionField(
                    name=p.wire, table=DirectoryValue.__table__, owner_id=self.model.id, attr=p.attr
                )
            else:
                fields[p.wire] = Field(
                    name=p.wire,
                    column=getattr(self.model, p.attr),
                    type="guid" if p.wire == "id" else p.type,  # type: ignore[arg-type]
                    filterable=p.filterable,
                    orderable=p.orderable,
                    searchable=p.searchable,
                )
        return fields

    def render(self, obj: Any, select: list[str] | None = None) -> dict[str, Any]:
        wanted = select or self.default_select
        props = self.by_wire
        out: dict[str, Any] = {}
        for wire in wanted:
            p = props[wire]
            value = p.compute(obj) if p.compute is not None else getattr(obj, p.attr)
            if p.type == "datetime":
                value = iso_z(value)
            elif p.type == "collection":
                value = list(value or [])
            out[wire] = value
        if "id" not in out:
            out["id"] = obj.id  # Graph always returns the id
        return out

    def parse(self, body: dict[str, Any], *, allow: tuple[str, ...] = ()) -> dict[str, Any]:
        """Wire body -> domain values. Unknown, read-only or mistyped properties are refused by name."""
        values: dict[str, Any] = {}
        props = self.by_wire
        for key, value in body.items():
            if key.startswith("@odata.") or key in allow:
                continue
            p = props.get(key)
            if p is None:
                raise BadRequest(
                    f"Property '{key}' does not exist on type 'microsoft.graph.{self.name}'. "
                    "Make sure to only use property names that are defined by the type."
                )
            if not p.writable:
                raise BadRequest(f"Property '{key}' is read-only and cannot be set.")
            values[p.attr] = _check_type(key, p.type, value)
        return values


def _check_type(key: str, kind: str, value: Any) -> Any:
    if value is None:
        if kind in ("boolean", "collection"):
            raise BadRequest(f"Property '{key}' cannot be null.")
        return None
    if kind == "string" and not isinstance(value, str):
        raise BadRequest(f"Property '{key}' expects a string value, not {type(value).__name__}.")
    if kind == "boolean" and not isinstance(value, bool):
        raise BadRequest(
            f"Property '{key}' expects a boolean value (true or false), not {type(value).__name__}."
        )
    if kind == "collection" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise BadRequest(f"Property '{key}' expects a collection of strings.")
    return value


USER = EntityType(
    "user",
    User,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("businessPhones", "business_phones", "collection"),
        Prop("displayName", "display_name", orderable=True, searchable=True),
        Prop("givenName", "given_name", orderable=True, searchable=True),
        Prop("jobTitle", "job_title", searchable=True),
        Prop("mail", "mail", orderable=True, searchable=True),
        Prop("mobilePhone", "mobile_phone"),
        Prop("officeLocation", "office_location"),
        Prop("preferredLanguage", "preferred_language"),
        Prop("surname", "surname", orderable=True, searchable=True),
        Prop("userPrincipalName", "user_principal_name", orderable=True, searchable=True),
        Prop("accountEnabled", "account_enabled", "boolean", default=False),
        Prop("mailNickname", "mail_nickname", default=False, searchable=True),
        Prop("department", "department", default=False, searchable=True),
        Prop("companyName", "company_name", default=False),
        Prop("employeeId", "employee_id", default=False),
        Prop("employeeType", "employee_type", default=False),
        Prop("city", "city", default=False),
        Prop("state", "state", default=False),
        Prop("country", "country", default=False),
        Prop("postalCode", "postal_code", default=False),
        Prop("streetAddress", "street_address", default=False),
        Prop("usageLocation", "usage_location", default=False),
        Prop("userType", "user_type", default=False),
        Prop("onPremisesImmutableId", "on_premises_immutable_id", default=False),
        Prop("otherMails", "other_mails", "collection", default=False),
        Prop("proxyAddresses", "proxy_addresses", "collection", writable=False, default=False),
        Prop("createdDateTime", "created_at", "datetime", writable=False, orderable=True, default=False),
    ),
)

GROUP = EntityType(
    "group",
    Group,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("displayName", "display_name", orderable=True, searchable=True),
        Prop("description", "description", searchable=True),
        Prop("mail", "mail", orderable=True, searchable=True),
        Prop("mailEnabled", "mail_enabled", "boolean"),
        Prop("mailNickname", "mail_nickname", searchable=True),
        Prop("securityEnabled", "security_enabled", "boolean"),
        Prop("groupTypes", "group_types", "collection"),
        Prop("visibility", "visibility"),
        Prop("classification", "classification"),
        Prop("isAssignableToRole", "is_assignable_to_role", "boolean"),
        Prop("proxyAddresses", "proxy_addresses", "collection", writable=False),
        Prop("createdDateTime", "created_at", "datetime", writable=False, orderable=True),
        Prop("renewedDateTime", "updated_at", "datetime", writable=False),
    ),
)

ENTITY_TYPES = {"user": USER, "group": GROUP}
