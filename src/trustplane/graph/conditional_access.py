"""Graph v1.0 conditional access face: ``/identity/conditionalAccess`` policies, namedLocations, templates
and ``evaluate`` (What-If). Thin: check permission, read the body, call ``access.service`` / ``what_if``,
render Graph JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.access import schemas, service, templates, what_if
from trustplane.access.models import ConditionalAccessPolicy, NamedLocation
from trustplane.access.repository import NamedLocationRepository, PolicyRepository
from trustplane.auth import permissions as perm
from trustplane.auth.deps import DbSession, ReadSession, requires
from trustplane.auth.permissions import Principal
from trustplane.core.bodies import read_json_object
from trustplane.core.errors import NotFound
from trustplane.graph.api import actor_of, json, no_content
from trustplane.graph.properties import EntityType, Prop
from trustplane.graph.query import check_options, context_url, list_collection, parse_select

PREFIX = "/v1.0/identity/conditionalAccess"
router = APIRouter(prefix=PREFIX, tags=["graph: conditional access"])
READ = Depends(requires(*perm.READ_CONDITIONAL_ACCESS))
WRITE = Depends(requires(*perm.WRITE_CONDITIONAL_ACCESS))


def _body_prop(wire: str) -> Prop:
    return Prop(wire, wire, "object", writable=False, compute=lambda row: row.body.get(wire))


POLICY = EntityType(
    "conditionalAccessPolicy",
    ConditionalAccessPolicy,
    (
        Prop("id", "id", writable=False, orderable=True),
        Prop("templateId", "template_id", writable=False),
        Prop("displayName", "display_name", orderable=True),
        _body_prop("description"),
        Prop("createdDateTime", "created_at", "datetime", writable=False, orderable=True),
        Prop("modifiedDateTime", "modified_at", "datetime", writable=False, orderable=True),
        Prop("state", "state"),
        _body_prop("conditions"),
        _body_prop("grantControls"),
        _body_prop("sessionControls"),
    ),
)
LOCATION_ONLY = {
    schemas.IP_LOCATION: ("ipRanges", "isTrusted"),
    schemas.COUNTRY_LOCATION: (
        "countriesAndRegions",
        "countryLookupMethod",
        "includeUnknownCountriesAndRegions",
    ),
}
LOCATION = EntityType(
    "namedLocation",
    NamedLocation,
    (
        Prop("@odata.type", "kind", "object", writable=False, compute=lambda row: row.body["@odata.type"]),
        Prop("id", "id", writable=False, orderable=True),
        Prop("displayName", "display_name", orderable=True),
        Prop("createdDateTime", "created_at", "datetime", writable=False, orderable=True),
        Prop("modifiedDateTime", "modified_at", "datetime", writable=False, orderable=True),
        *(
            _body_prop(w)
            for w in (
                "ipRanges",
                "isTrusted",
                "countriesAndRegions",
                "countryLookupMethod",
                "includeUnknownCountriesAndRegions",
            )
        ),
    ),
)


def _location_wire(item: dict[str, Any], odata_type: str) -> dict[str, Any]:
    """Only the properties of the location's own type (an ipNamedLocation has no countriesAndRegions)."""
    other = {k for t, keys in LOCATION_ONLY.items() if t != odata_type for k in keys}
    return {k: v for k, v in item.items() if k not in other}


def _entity(request: Request, etype: EntityType, row: Any, fragment: str) -> dict[str, Any]:
    options = check_options(request, {"$select"})
    select_ = parse_select(options, list(etype.by_wire))
    return {"@odata.context": context_url(request, fragment, select_), **etype.render(row, select_)}


# ---------------------------------------------------------------- policies


@router.get("/policies", summary="List conditional access policies")
async def list_policies(
    request: Request, principal: Principal = READ, session: AsyncSession = ReadSession
) -> Response:
    base = PolicyRepository(session, principal.tenant_id).select()
    return json(await list_collection(request, session, POLICY, base, "identity/conditionalAccess/policies"))


@router.post("/policies", status_code=201, summary="Create a conditional access policy")
async def create_policy(
    request: Request, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    policy = await service.create_policy(session, principal.tenant_id, actor_of(principal), body)
    return json(
        {
            "@odata.context": context_url(request, "identity/conditionalAccess/policies/$entity"),
            **service.policy_graph(policy),
        },
        201,
    )


@router.get("/policies/{policy_id}", summary="Get a conditional access policy")
async def get_policy(
    policy_id: str, request: Request, principal: Principal = READ, session: AsyncSession = ReadSession
) -> Response:
    policy = await service.get_policy(session, principal.tenant_id, policy_id)
    return json(_entity(request, POLICY, policy, "identity/conditionalAccess/policies/$entity"))


@router.patch("/policies/{policy_id}", status_code=204, summary="Update a conditional access policy")
async def update_policy(
    policy_id: str, request: Request, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    await service.update_policy(session, principal.tenant_id, actor_of(principal), policy_id, body)
    return no_content()


@router.delete("/policies/{policy_id}", status_code=204, summary="Delete a conditional access policy")
async def delete_policy(
    policy_id: str, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    await service.delete_policy(session, principal.tenant_id, actor_of(principal), policy_id)
    return no_content()


# ---------------------------------------------------------------- named locations


@router.get("/namedLocations", summary="List named locations")
async def list_locations(
    request: Request, principal: Principal = READ, session: AsyncSession = ReadSession
) -> Response:
    base = NamedLocationRepository(session, principal.tenant_id).select()
    page = await list_collection(
        request, session, LOCATION, base, "identity/conditionalAccess/namedLocations"
    )
    page["value"] = [_location_wire(item, item.get("@odata.type", "")) for item in page["value"]]
    return json(page)


@router.post("/namedLocations", status_code=201, summary="Create a named location")
async def create_location(
    request: Request, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    location = await service.create_location(session, principal.tenant_id, actor_of(principal), body)
    return json(
        {
            "@odata.context": context_url(request, "identity/conditionalAccess/namedLocations/$entity"),
            **service.location_graph(location),
        },
        201,
    )


@router.get("/namedLocations/{location_id}", summary="Get a named location")
async def get_location(
    location_id: str, request: Request, principal: Principal = READ, session: AsyncSession = ReadSession
) -> Response:
    location = await service.get_location(session, principal.tenant_id, location_id)
    item = _entity(request, LOCATION, location, "identity/conditionalAccess/namedLocations/$entity")
    return json(_location_wire(item, location.body["@odata.type"]))


@router.patch("/namedLocations/{location_id}", status_code=204, summary="Update a named location")
async def update_location(
    location_id: str, request: Request, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    await service.update_location(session, principal.tenant_id, actor_of(principal), location_id, body)
    return no_content()


@router.delete("/namedLocations/{location_id}", status_code=204, summary="Delete a named location")
async def delete_location(
    location_id: str, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    await service.delete_location(session, principal.tenant_id, actor_of(principal), location_id)
    return no_content()


# ---------------------------------------------------------------- What-If


@router.post("/evaluate", summary="What-If: which policies would apply to a sign-in, and why not")
async def evaluate(
    request: Request, principal: Principal = READ, session: AsyncSession = DbSession
) -> Response:
    body = await read_json_object(request)
    results, decision = await what_if.evaluate(session, principal.tenant_id, body)
    out: dict[str, Any] = {
        "@odata.context": context_url(request, "Collection(microsoft.graph.whatIfAnalysisResult)"),
        "value": results,
    }
    if decision is not None:
        # An OData instance annotation (clients that do not know it ignore it): the combined decision.
        out["@trustplane.decision"] = decision.as_dict()
    return json(out)


# ---------------------------------------------------------------- templates


@router.get("/templates", summary="List conditional access policy templates")
async def list_templates(request: Request, principal: Principal = READ) -> Response:
    return json(
        {
            "@odata.context": context_url(request, "identity/conditionalAccess/templates"),
            "value": [t.as_graph() for t in templates.TEMPLATES],
        }
    )


@router.get("/templates/{template_id}", summary="Get a conditional access policy template")
async def get_template(template_id: str, request: Request, principal: Principal = READ) -> Response:
    template = templates.BY_ID.get(template_id)
    if template is None:
        raise NotFound(f"The conditional access template '{template_id}' was not found.")
    return json(
        {
            "@odata.context": context_url(request, "identity/conditionalAccess/templates/$entity"),
            **template.as_graph(),
        }
    )


@router.post(
    "/templates/createPolicies", status_code=201, summary="Create policies from templates in one call"
)
async def create_from_templates(
    request: Request, principal: Principal = WRITE, session: AsyncSession = DbSession
) -> Response:
    """TrustPlane's one-call template set: ``{"templateIds": [...]?, "state": ..., "excludeUsers": [...],
    "excludeGroups": [...]}``. Every template when ``templateIds`` is left out; report-only by default, the
    safe way to start a policy."""
    body = await read_json_object(request)
    for key in body:
        if key not in ("templateIds", "state", "excludeUsers", "excludeGroups"):
            raise schemas.bad(
                f"The parameter '{key}' is not known (templateIds, state, excludeUsers, excludeGroups)."
            )
    state = body.get("state", "enabledForReportingButNotEnforced")
    if state not in schemas.POLICY_STATES:
        raise schemas.bad(f"'{state}' is not a valid policy state ({', '.join(schemas.POLICY_STATES)}).")
    lists: dict[str, list[str]] = {}
    for key in ("templateIds", "excludeUsers", "excludeGroups"):
        value = body.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise schemas.bad(f"The parameter '{key}' expects a collection of strings.")
        lists[key] = list(value or [])
    created = await service.create_from_templates(
        session,
        principal.tenant_id,
        actor_of(principal),
        template_ids=lists["templateIds"] if "templateIds" in body else None,
        state=state,
        exclude_users=lists["excludeUsers"],
        exclude_groups=lists["excludeGroups"],
    )
    return json(
        {
            "@odata.context": context_url(request, "identity/conditionalAccess/policies"),
            "value": [service.policy_graph(p) for p in created],
        },
        201,
    )
