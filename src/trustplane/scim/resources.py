"""SCIM resources <-> directory objects. A request body is first normalised against the published schema
(canonical attribute names, types checked, read-only attributes dropped; the Entra dialect's quirks
tolerated when the client's token asks for it), then mapped onto the directory's columns; attributes without
a column are kept as sent in ``scim_attributes``. Rendering goes the other way, then ``project`` applies
``attributes`` / ``excludedAttributes``."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trustplane.core.clock import iso_z
from trustplane.directory.models import Group, User
from trustplane.directory.service import UPN_RE
from trustplane.scim.errors import invalid_syntax, invalid_value
from trustplane.scim.schemas import (
    COMMON,
    ENTERPRISE_SCHEMA,
    ENTRA_GROUP_SCHEMA,
    GROUP_TYPE,
    USER_TYPE,
    Attr,
    ResourceType,
    Schema,
)

# Attributes the directory cannot leave empty (it needs a display name and an enabled flag): when a SCIM
# client removes one, the column keeps a fallback and the attribute is listed here, so SCIM shows it absent.
ABSENT = "_absent"
EMPTY: tuple[Any, ...] = (None, "", [], {})


@dataclass(frozen=True)
class Dialect:
    """How tolerant the server is of one provisioning client (a setting of its API token)."""

    tolerant: bool = False

    @classmethod
    def from_settings(cls, settings: dict[str, object]) -> Dialect:
        return cls(tolerant=str(settings.get("scim_dialect", "rfc")).lower() == "entra")


# ---------------------------------------------------------------- normalisation of request values


def _boolean(value: Any, where: str, dialect: Dialect) -> bool:
    if isinstance(value, bool):
        return value
    if dialect.tolerant and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # Entra sends "True" / "False"
    raise invalid_value(f"'{where}' is a boolean; {value!r} is not one.")


def coerce(attr: Attr, value: Any, where: str, dialect: Dialect, *, element: bool = False) -> Any:
    """One attribute's value, checked against its definition; unassigned values come back as None."""
    if value is None:
        return None
    if attr.multi and not element:
        if not isinstance(value, list):
            if not dialect.tolerant:
                raise invalid_value(f"'{where}' is multi-valued; send a list.")
            value = [value]
        items = [coerce(attr, v, where, dialect, element=True) for v in value]
        items = [i for i in items if i not in EMPTY]
        return items or None
    if attr.type == "complex":
        if not isinstance(value, dict):
            raise invalid_value(f"'{where}' is complex; send an object.")
        out: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attr.child(key)
            if sub is None:
                if sub_value in EMPTY or dialect.tolerant:
                    continue
                raise invalid_syntax(f"'{where}' has no sub-attribute '{key}'.")
            if sub.mutability == "readOnly":
                continue
            coerced = coerce(sub, sub_value, f"{where}.{sub.name}", dialect)
            if coerced not in EMPTY:
                out[sub.name] = coerced
        return out or None
    if attr.type == "boolean":
        return _boolean(value, where, dialect)
    if attr.type in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_value(f"'{where}' is a number; {value!r} is not one.")
        return value
    if not isinstance(value, str):
        raise invalid_value(f"'{where}' is a string; {value!r} is not one.")
    if "\x00" in value:
        raise invalid_value(f"'{where}' contains a NUL character, which is not allowed.")
    if attr.type == "dateTime":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise invalid_value(f"'{where}' is not an ISO 8601 dateTime.") from exc
    return value or None


def find_attr(rtype: ResourceType, schema_id: str | None, name: str) -> tuple[Schema, Attr] | None:
    return rtype.find(schema_id, name)


def expand_keys(rtype: ResourceType, body: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    """Entra's path-less PATCH values name attributes with dots and schema URNs
    (``{"name.givenName": …, "urn:…:enterprise:2.0:User:employeeNumber": …}``): fold them into nested
    objects. Only in the tolerant dialect; the RFC's form is nested objects."""
    out: dict[str, Any] = {}
    extension_ids = {e.id.lower(): e.id for e in rtype.extensions}
    core_prefix = rtype.schema.id.lower() + ":"
    for key, value in body.items():
        target = out
        name = key
        lowered = key.lower()
        if lowered in extension_ids:
            ext = out.setdefault(extension_ids[lowered], {})
            if isinstance(value, dict) and isinstance(ext, dict):
                ext.update(value)
                continue
        elif lowered.startswith("urn:"):
            urn, _, name = key.rpartition(":")
            if urn.lower() in extension_ids:
                if not dialect.tolerant:
                    raise invalid_syntax(f"'{key}': name extension attributes inside the '{urn}' object.")
                target = out.setdefault(extension_ids[urn.lower()], {})
            elif lowered.startswith(core_prefix):
                if not dialect.tolerant:
                    raise invalid_syntax(f"'{key}': name core attributes without their schema URN.")
            else:
                target = out
                name = key
        if "." in name and not name.lower().startswith("urn:"):
            if not dialect.tolerant:
                raise invalid_syntax(f"'{key}': a sub-attribute goes inside its attribute's object.")
            head, _, sub = name.partition(".")
            parent = target.setdefault(head, {})
            if isinstance(parent, dict):
                parent[sub] = value
            continue
        target[name] = value
    return out


def normalize(
    rtype: ResourceType, body: dict[str, Any], dialect: Dialect, *, check_schemas: bool
) -> dict[str, Any]:
    """A resource body as a canonical document of writable attributes (extensions under their URN)."""
    if check_schemas:
        _check_schemas(rtype, body.get("schemas"), dialect)
    body = expand_keys(rtype, body, dialect) if dialect.tolerant else body
    doc: dict[str, Any] = {}
    extension_ids = {e.id.lower(): e for e in rtype.extensions}
    for key, value in body.items():
        lowered = key.lower()
        if lowered in ("schemas", "id", "meta"):
            continue
        if lowered in extension_ids:
            ext = extension_ids[lowered]
            if value in EMPTY:
                continue
            if not isinstance(value, dict):
                raise invalid_value(f"'{key}' must be an object of the extension's attributes.")
            ext_doc = _normalize_attrs(ext, value, dialect, key)
            if ext_doc:
                doc[ext.id] = ext_doc
            continue
        found = rtype.find(None, key)
        if found is None:
            if value in EMPTY or dialect.tolerant:
                continue  # e.g. Entra's "roles": [] on users
            raise invalid_syntax(f"Unknown attribute '{key}' for a {rtype.name}.")
        _, attr = found
        if attr.mutability == "readOnly":
            continue
        coerced = coerce(attr, value, attr.name, dialect)
        if coerced not in EMPTY:
            doc[attr.name] = coerced
    return doc


def _normalize_attrs(schema: Schema, body: dict[str, Any], dialect: Dialect, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "schemas":  # some clients repeat the extension's own URN inside it
            continue
        attr = schema.attr(key)
        if attr is None:
            if value in EMPTY or dialect.tolerant:
                continue
            raise invalid_syntax(f"Unknown attribute '{key}' in '{where}'.")
        if attr.mutability == "readOnly":
            continue
        coerced = coerce(attr, value, attr.name, dialect)
        if coerced not in EMPTY:
            out[attr.name] = coerced
    return out


def _check_schemas(rtype: ResourceType, schemas: Any, dialect: Dialect) -> None:
    if schemas is None and dialect.tolerant:
        return
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise invalid_syntax(f"'schemas' must be a list naming '{rtype.schema.id}'.")
    known = {s.lower() for s in rtype.schema_ids}
    if rtype.schema.id.lower() not in {s.lower() for s in schemas}:
        if not dialect.tolerant:
            raise invalid_syntax(f"'schemas' must include '{rtype.schema.id}'.")
    unknown = [s for s in schemas if s.lower() not in known]
    if unknown and not dialect.tolerant:
        hint = (
            " (Microsoft Entra's group schema; use a token with --scim-dialect entra)"
            if (ENTRA_GROUP_SCHEMA.lower() in {u.lower() for u in unknown})
            else ""
        )
        raise invalid_syntax(f"Unknown schema(s): {', '.join(unknown)}{hint}.")


# ---------------------------------------------------------------- users

# SCIM attribute -> directory column. Everything else in the schema lives in scim_attributes as sent.
USER_COLUMNS = {
    "displayName": "display_name",
    "title": "job_title",
    "active": "account_enabled",
    "externalId": "external_id",
}
NAME_COLUMNS = {"givenName": "given_name", "familyName": "surname"}
ENTERPRISE_COLUMNS = {"department": "department", "organization": "company_name"}
REQUIRED_COLUMNS = {"displayName", "active"}  # the directory needs a value: see ABSENT


def user_document(user: User) -> dict[str, Any]:
    """The user's writable SCIM attributes (no id, meta, groups)."""
    extra: dict[str, Any] = dict(user.scim_attributes or {})
    absent = set(extra.pop(ABSENT, []))
    doc: dict[str, Any] = {"userName": user.user_name or user.user_principal_name}
    for scim_name, column in USER_COLUMNS.items():
        value = getattr(user, column)
        if value is not None and scim_name not in absent:
            doc[scim_name] = value
    name = dict(extra.pop("name", {}) or {})
    for scim_name, column in NAME_COLUMNS.items():
        if getattr(user, column):
            name[scim_name] = getattr(user, column)
    if name:
        doc["name"] = name
    enterprise = dict(extra.pop("enterprise", {}) or {})
    for scim_name, column in ENTERPRISE_COLUMNS.items():
        if getattr(user, column):
            enterprise[scim_name] = getattr(user, column)
    if "emails" not in extra and user.mail:
        extra["emails"] = [{"value": user.mail, "type": "work", "primary": True}]
    doc.update(extra)
    if enterprise:
        doc[ENTERPRISE_SCHEMA] = enterprise
    return doc


def _derived_upn(user_name: str, domain: str) -> str:
    """A userPrincipalName for a SCIM userName that is not one: a readable local part and a digest of the
    userName, so distinct userNames never collide."""
    local = re.sub(r"[^A-Za-z0-9._-]", "-", user_name.split("@")[0]).strip(".-")[:48] or "user"
    digest = hashlib.sha256(user_name.lower().encode()).hexdigest()[:10]
    return f"{local}.{digest}@{domain}"


def _nickname(user_name: str) -> str:
    local = re.sub(r"[^A-Za-z0-9._-]", "", user_name.split("@")[0])[:64]
    return local or "user"


def user_values(
    doc: dict[str, Any], tenant_domain: str, *, creating: bool
) -> tuple[dict[str, Any], str | None]:
    """Directory values for a whole SCIM document (PUT replaces all that is writable), and the password."""
    doc = dict(doc)
    user_name = doc.pop("userName", None)
    if not isinstance(user_name, str) or not user_name.strip():
        raise invalid_value("'userName' is required.")
    if len(user_name) > 256:
        raise invalid_value("'userName' is longer than 256 characters.")
    password = doc.pop("password", None)
    values: dict[str, Any] = {}
    if UPN_RE.match(user_name):
        values["user_principal_name"], values["user_name"] = user_name, None
    else:
        values["user_principal_name"], values["user_name"] = _derived_upn(user_name, tenant_domain), user_name
    absent: list[str] = []
    for scim_name, column in USER_COLUMNS.items():
        value = doc.pop(scim_name, None)
        if value is None and scim_name in REQUIRED_COLUMNS:
            absent.append(scim_name)
        values[column] = value
    name = dict(doc.pop("name", None) or {})
    for scim_name, column in NAME_COLUMNS.items():
        values[column] = name.pop(scim_name, None)
    enterprise = dict(doc.pop(ENTERPRISE_SCHEMA, None) or {})
    for scim_name, column in ENTERPRISE_COLUMNS.items():
        values[column] = enterprise.pop(scim_name, None)
    if values["display_name"] is None:
        given = " ".join(p for p in (values["given_name"], values["surname"]) if p)
        values["display_name"] = name.get("formatted") or given or user_name
    if values["account_enabled"] is None:
        values["account_enabled"] = True
    emails = doc.get("emails") or []
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
    values["mail"] = primary.get("value") if primary else None
    extra: dict[str, Any] = dict(doc)
    if name:
        extra["name"] = name
    if enterprise:
        extra["enterprise"] = enterprise
    if absent:
        extra[ABSENT] = {name: True for name in absent}  # a dict, so filters can test a key in SQL
    values["scim_attributes"] = extra
    if creating:
        values["mail_nickname"] = _nickname(user_name)
    return values, password


def user_multi_values(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Rows for ``directory_values``, so filters on emails / phoneNumbers are indexed lookups: the attribute
    name carries the element's primary flag and type (``scim.emails:1:work``)."""
    rows: dict[str, list[str]] = {}
    for attr in ("emails", "phoneNumbers"):
        for element in doc.get(attr) or []:
            value = element.get("value")
            if not isinstance(value, str):
                continue
            kind = str(element.get("type") or "")[:40]
            key = f"scim.{attr}:{1 if element.get('primary') else 0}:{kind}"
            rows.setdefault(key, []).append(value[:1024])
    return rows


def meta(resource_type: str, obj: User | Group, base: str, endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": iso_z(obj.created_at),
        "lastModified": iso_z(obj.updated_at),
        "location": f"{base}{endpoint}/{obj.id}",
        "version": etag(obj),
    }


def etag(obj: User | Group) -> str:
    return f'W/"{obj.version}"'


def render_user(user: User, base: str, groups: list[tuple[str, str]] | None) -> dict[str, Any]:
    doc = user_document(user)
    schemas = [USER_TYPE.schema.id]
    if ENTERPRISE_SCHEMA in doc:
        schemas.append(ENTERPRISE_SCHEMA)
    out: dict[str, Any] = {"schemas": schemas, "id": user.id}
    out.update(doc)
    if groups:
        out["groups"] = [
            {"value": gid, "$ref": f"{base}/Groups/{gid}", "display": name, "type": "direct"}
            for gid, name in groups
        ]
    out["meta"] = meta("User", user, base, "/Users")
    return out


# ---------------------------------------------------------------- groups


def group_document(group: Group) -> dict[str, Any]:
    extra: dict[str, Any] = dict(group.scim_attributes or {})
    doc: dict[str, Any] = {"displayName": group.display_name}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc.update(extra)
    return doc


def group_values(doc: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k != "members"}
    display_name = doc.pop("displayName", None)
    if not display_name:
        raise invalid_value("'displayName' is required.")
    values: dict[str, Any] = {"external_id": doc.pop("externalId", None), "display_name": display_name}
    values["scim_attributes"] = dict(doc)
    if creating:
        nickname = re.sub(r"[^A-Za-z0-9._-]", "", str(display_name))[:64]
        values.update(mail_nickname=nickname or "group", mail_enabled=False, security_enabled=True)
    return values


def render_member(base: str, member_id: str, member_type: str) -> dict[str, Any]:
    kind = "User" if member_type == "user" else "Group"
    return {"value": member_id, "$ref": f"{base}/{kind}s/{member_id}", "type": kind}


def render_group(group: Group, base: str, members: list[tuple[str, str]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"schemas": [GROUP_TYPE.schema.id], "id": group.id}
    out.update(group_document(group))
    if members:
        out["members"] = [render_member(base, mid, mtype) for mid, mtype in members]
    out["meta"] = meta("Group", group, base, "/Groups")
    return out


# ---------------------------------------------------------------- attributes / excludedAttributes


def _split_names(raw: str | None) -> list[str]:
    return [n.strip() for n in (raw or "").split(",") if n.strip()]


@dataclass(frozen=True)
class Projection:
    """``attributes`` / ``excludedAttributes`` resolved to canonical (schema, attribute, sub) triples."""

    include: tuple[tuple[str, str, str | None], ...] = ()
    exclude: tuple[tuple[str, str, str | None], ...] = ()

    @classmethod
    def parse(cls, rtype: ResourceType, attributes: str | None, excluded: str | None) -> Projection:
        return cls(_resolve(rtype, _split_names(attributes)), _resolve(rtype, _split_names(excluded)))

    def wants(self, attr: str) -> bool:
        """Would the rendered resource show ``attr`` (a core attribute name)? Lets callers skip queries."""
        if self.include:
            return any(a == attr for _, a, _ in self.include)
        return not any(a == attr and sub is None for _, a, sub in self.exclude)

    def apply(self, rtype: ResourceType, resource: dict[str, Any]) -> dict[str, Any]:
        if self.include:
            out: dict[str, Any] = {"schemas": resource.get("schemas", []), "id": resource["id"]}
            for schema, attr, sub in self.include:
                holder = resource.get(schema) if schema != rtype.schema.id else resource
                if not isinstance(holder, dict) or attr not in holder:
                    continue
                target = out.setdefault(schema, {}) if schema != rtype.schema.id else out
                value = holder[attr]
                if sub is None:
                    target[attr] = copy.deepcopy(value)  # the record may be a shared cached row
                elif isinstance(value, list):
                    picked = [{sub: v[sub]} for v in value if isinstance(v, dict) and sub in v]
                    if picked:
                        existing = target.get(attr)
                        if isinstance(existing, list) and len(existing) == len(picked):
                            for old, new in zip(existing, picked, strict=True):
                                old.update(new)
                        elif not isinstance(existing, list):
                            target[attr] = picked
                elif isinstance(value, dict) and sub in value:
                    target.setdefault(attr, {})[sub] = value[sub]
            return out
        if not self.exclude:
            return resource
        out = dict(resource)
        for schema, attr, sub in self.exclude:
            holder = out if schema == rtype.schema.id else out.get(schema)
            if not isinstance(holder, dict) or attr not in holder or attr in ("id", "schemas"):
                continue
            if schema != rtype.schema.id:
                holder = out[schema] = dict(holder)
            if sub is None:
                del holder[attr]
            elif isinstance(holder[attr], dict):
                holder[attr] = {k: v for k, v in holder[attr].items() if k != sub}
            elif isinstance(holder[attr], list):
                holder[attr] = [{k: v for k, v in e.items() if k != sub} for e in holder[attr]]
        return out


def _resolve(rtype: ResourceType, names: list[str]) -> tuple[tuple[str, str, str | None], ...]:
    resolved: list[tuple[str, str, str | None]] = []
    extension_ids = {e.id.lower(): e for e in rtype.extensions}
    for raw in names:
        schema_id: str | None = None
        name = raw
        if raw.lower() in extension_ids:
            ext = extension_ids[raw.lower()]
            resolved.extend((ext.id, a.name, None) for a in ext.attributes)
            continue
        if raw.lower().startswith("urn:"):
            schema_id, _, name = raw.rpartition(":")
        head, _, sub = name.partition(".")
        found = rtype.find(schema_id, head)
        if found is None:
            continue  # an unknown attribute selects nothing (RFC 7644 §3.4.2.5)
        schema, attr = found
        sub_name: str | None = None
        if sub:
            child = attr.child(sub)
            if child is None:
                continue
            sub_name = child.name
        owner = rtype.schema.id if schema is rtype.schema or attr in COMMON else schema.id
        resolved.append((owner, attr.name, sub_name))
    return tuple(resolved)


def parse_if_match(header: str | None) -> set[int] | None:
    """``If-Match`` as the versions it accepts; None for no header or ``*`` (any version). An ETag that is
    not one of ours accepts no version, so the change gets 412."""
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for tag in header.split(","):
        match = re.fullmatch(r'\s*(?:W/)?"(\d{1,18})"\s*', tag)
        if match:
            versions.add(int(match.group(1)))
    return versions
