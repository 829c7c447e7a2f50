"""The SCIM schemas TrustPlane publishes (RFC 7643 §4, §7, §8.7): core User, the Enterprise User extension and
Group, limited to what the directory keeps; the resource types and the service provider configuration. The
attribute definitions are also what requests are checked against (types, mutability, sub-attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
# Microsoft Entra's provisioning service adds this URN to the groups it creates (tolerated in its dialect).
ENTRA_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

MAX_RESULTS = 1000
MAX_BULK_OPERATIONS = 1000


@dataclass(frozen=True)
class Attr:
    name: str
    type: str = "string"  # string boolean decimal integer dateTime reference complex binary
    multi: bool = False
    required: bool = False
    mutability: str = "readWrite"  # readOnly readWrite immutable writeOnly
    returned: str = "default"  # always never default request
    uniqueness: str = "none"
    case_exact: bool = False
    canonical: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub: tuple[Attr, ...] = ()
    description: str = ""

    def child(self, name: str) -> Attr | None:
        lowered = name.lower()
        return next((a for a in self.sub if a.name.lower() == lowered), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi,
            "description": self.description or self.name,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in ("string", "reference", "binary"):
            out["caseExact"] = self.case_exact
        if self.type in ("string",):
            out["uniqueness"] = self.uniqueness
        if self.canonical:
            out["canonicalValues"] = list(self.canonical)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub:
            out["subAttributes"] = [a.to_json() for a in self.sub]
        return out


def _multi(name: str, types: tuple[str, ...], *extra: Attr, value_type: str = "string") -> Attr:
    return Attr(
        name,
        "complex",
        multi=True,
        sub=(
            Attr("value", value_type),
            Attr("type", canonical=types),
            Attr("primary", "boolean"),
            *extra,
        ),
    )


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attr, ...] = field(default=())

    def attr(self, name: str) -> Attr | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)

    def to_json(self, base: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{self.id}"},
        }


USER = Schema(
    USER_SCHEMA,
    "User",
    "User Account",
    (
        Attr("userName", required=True, uniqueness="server"),
        Attr(
            "name",
            "complex",
            sub=(
                Attr("formatted"),
                Attr("familyName"),
                Attr("givenName"),
                Attr("middleName"),
                Attr("honorificPrefix"),
                Attr("honorificSuffix"),
            ),
        ),
        Attr("displayName"),
        Attr("nickName"),
        Attr("profileUrl", "reference", reference_types=("external",)),
        Attr("title"),
        Attr("userType", canonical=("Member", "Guest")),
        Attr("preferredLanguage"),
        Attr("locale"),
        Attr("timezone"),
        Attr("active", "boolean"),
        Attr("password", mutability="writeOnly", returned="never"),
        _multi("emails", ("work", "home", "other")),
        _multi("phoneNumbers", ("work", "home", "mobile", "fax", "pager", "other")),
        Attr(
            "addresses",
            "complex",
            multi=True,
            sub=(
                Attr("formatted"),
                Attr("streetAddress"),
                Attr("locality"),
                Attr("region"),
                Attr("postalCode"),
                Attr("country"),
                Attr("type", canonical=("work", "home", "other")),
                Attr("primary", "boolean"),
            ),
        ),
        Attr(
            "groups",
            "complex",
            multi=True,
            mutability="readOnly",
            sub=(
                Attr("value", mutability="readOnly"),
                Attr("$ref", "reference", mutability="readOnly", reference_types=("Group",)),
                Attr("display", mutability="readOnly"),
                Attr("type", mutability="readOnly", canonical=("direct", "indirect")),
            ),
        ),
    ),
)

ENTERPRISE = Schema(
    ENTERPRISE_SCHEMA,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attr("employeeNumber"),
        Attr("costCenter"),
        Attr("organization"),
        Attr("division"),
        Attr("department"),
        Attr(
            "manager",
            "complex",
            sub=(
                Attr("value"),
                Attr("$ref", "reference", reference_types=("User",)),
                Attr("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    GROUP_SCHEMA,
    "Group",
    "Group",
    (
        Attr("displayName", required=True),
        Attr(
            "members",
            "complex",
            multi=True,
            sub=(
                Attr("value", mutability="immutable", case_exact=True),
                Attr("$ref", "reference", mutability="immutable", reference_types=("User", "Group")),
                Attr("type", mutability="immutable", canonical=("User", "Group")),
            ),
        ),
    ),
)

# Attributes every resource has (RFC 7643 §3.1).
COMMON = (
    Attr("id", mutability="readOnly", returned="always", uniqueness="server", case_exact=True),
    Attr("externalId", case_exact=True),
    Attr(
        "meta",
        "complex",
        mutability="readOnly",
        sub=(
            Attr("resourceType", mutability="readOnly"),
            Attr("created", "dateTime", mutability="readOnly"),
            Attr("lastModified", "dateTime", mutability="readOnly"),
            Attr("location", "reference", mutability="readOnly"),
            Attr("version", mutability="readOnly"),
        ),
    ),
)

SCHEMAS = {s.id: s for s in (USER, ENTERPRISE, GROUP)}


@dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(e.id for e in self.extensions))

    def find(self, schema_id: str | None, name: str) -> tuple[Schema, Attr] | None:
        """An attribute by name, in ``schema_id`` or (without one) in the core schema or the common ones."""
        schemas = [self.schema, *self.extensions]
        if schema_id is not None:
            wanted = schema_id.lower()
            schemas = [s for s in schemas if s.id.lower() == wanted]
            if not schemas:
                return None
        lowered = name.lower()
        if schema_id is None or schemas[0] is self.schema:
            for attr in COMMON:
                if attr.name.lower() == lowered:
                    return self.schema, attr
        for schema in schemas[:1] if schema_id is not None else [self.schema]:
            found = schema.attr(name)
            if found is not None:
                return schema, found
        return None

    def to_json(self, base: str) -> dict[str, Any]:
        return {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{self.name}"},
        }


USER_TYPE = ResourceType("User", "/Users", USER, (ENTERPRISE,))
GROUP_TYPE = ResourceType("Group", "/Groups", GROUP)
RESOURCE_TYPES = {"User": USER_TYPE, "Group": GROUP_TYPE}


def service_provider_config(base: str, max_body_bytes: int) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": MAX_BULK_OPERATIONS,
            "maxPayloadSize": max_body_bytes,
        },
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "An API token of `trustplane tokens create` with Scim.ReadWrite.All.",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }
