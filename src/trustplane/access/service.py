"""Conditional access rules, once: policy and named-location CRUD (each change emits an event, which the
audit log records, and bumps the tenant's policy revision), the compiled index per tenant (recompiled when
the revision moves, so every server process sees a change at its next decision), and the decision itself,
``evaluate_sign_in``. Never commits; no HTTP types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.access import schemas, templates
from trustplane.access.compiler import PolicyIndex, compile_index
from trustplane.access.evaluator import Decision, DeviceInfo, SignInContext, evaluate
from trustplane.access.models import ConditionalAccessPolicy, NamedLocation
from trustplane.access.repository import NamedLocationRepository, PolicyRepository, RevisionRepository
from trustplane.core.clock import iso_z, utcnow
from trustplane.core.errors import BadRequest, NotFound
from trustplane.core.events import Actor, EventSpec, emit, subscribe
from trustplane.core.ids import is_uuid, new_id
from trustplane.directory import service as directory
from trustplane.directory.audit import ACTIVITIES, AUDIT_JOB
from trustplane.protection import service as protection

# The audit log records conditional access changes in the words Entra's directory audit uses.
ACTIVITIES.update(
    {
        "access.policy.created": ("Add conditional access policy", "Policy"),
        "access.policy.updated": ("Update conditional access policy", "Policy"),
        "access.policy.deleted": ("Delete conditional access policy", "Policy"),
        "access.named_location.created": ("Add named location", "Policy"),
        "access.named_location.updated": ("Update named location", "Policy"),
        "access.named_location.deleted": ("Delete named location", "Policy"),
    }
)
subscribe("access.", AUDIT_JOB)

# tenant id -> its compiled index; trusted only while its revision equals the database's.
_INDEXES: dict[str, PolicyIndex] = {}


async def _changed(session: AsyncSession, tenant_id: str, actor: Actor, spec: EventSpec) -> None:
    """After every policy or named-location change: write it, move the tenant's revision (every process
    recompiles its index at its next decision) and emit the event (the audit log records it)."""
    await session.flush()
    await RevisionRepository(session, tenant_id).bump()
    await emit(session, tenant_id, actor, spec)


def _not_found(kind: str, object_id: str) -> NotFound:
    return NotFound(f"The {kind} '{object_id}' was not found.", code="Request_ResourceNotFound")


def policy_graph(policy: ConditionalAccessPolicy) -> dict[str, Any]:
    """The stored policy as canonical Graph JSON (id and times from the row)."""
    body = policy.body
    return {
        "id": policy.id,
        "templateId": policy.template_id,
        "displayName": policy.display_name,
        "description": body.get("description"),
        "createdDateTime": iso_z(policy.created_at),
        "modifiedDateTime": iso_z(policy.modified_at),
        "state": policy.state,
        "conditions": body.get("conditions"),
        "grantControls": body.get("grantControls"),
        "sessionControls": body.get("sessionControls"),
    }


def location_graph(location: NamedLocation) -> dict[str, Any]:
    body = dict(location.body)
    odata_type = body.pop("@odata.type")
    return {
        "@odata.type": odata_type,
        "id": location.id,
        "displayName": location.display_name,
        "createdDateTime": iso_z(location.created_at),
        "modifiedDateTime": iso_z(location.modified_at),
        **{k: v for k, v in body.items() if k != "displayName"},
    }


# ---------------------------------------------------------------- policies


async def get_policy(session: AsyncSession, tenant_id: str, policy_id: str) -> ConditionalAccessPolicy:
    policy = await PolicyRepository(session, tenant_id).get(policy_id) if is_uuid(policy_id) else None
    if policy is None:
        raise _not_found("conditional access policy", policy_id)
    return policy


async def _check_location_refs(session: AsyncSession, tenant_id: str, policy: dict[str, Any]) -> None:
    locations = policy["conditions"].get("locations")
    if not locations:
        return
    ids = [
        i
        for i in (*locations["includeLocations"], *locations["excludeLocations"])
        if i not in schemas.SPECIAL_LOCATIONS
    ]
    known = await NamedLocationRepository(session, tenant_id).existing_ids(ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise schemas.bad(f"The named location '{missing[0]}' referenced by the policy does not exist.")


def _store(policy: ConditionalAccessPolicy, canonical: dict[str, Any]) -> None:
    policy.display_name = canonical["displayName"]
    policy.state = canonical["state"]
    policy.template_id = canonical.get("templateId")
    policy.body = {
        k: canonical.get(k) for k in ("description", "conditions", "grantControls", "sessionControls")
    }


async def create_policy(
    session: AsyncSession, tenant_id: str, actor: Actor, body: dict[str, Any]
) -> ConditionalAccessPolicy:
    canonical = schemas.normalize_policy(body)
    await _check_location_refs(session, tenant_id, canonical)
    policy = ConditionalAccessPolicy(id=new_id(), created_at=utcnow())
    _store(policy, canonical)
    PolicyRepository(session, tenant_id).add(policy)
    await _changed(
        session,
        tenant_id,
        actor,
        EventSpec(
            "access.policy.created",
            "policy",
            policy.id,
            {"displayName": policy.display_name, "state": policy.state},
        ),
    )
    return policy


async def update_policy(
    session: AsyncSession, tenant_id: str, actor: Actor, policy_id: str, body: dict[str, Any]
) -> ConditionalAccessPolicy:
    policy = await get_policy(session, tenant_id, policy_id)
    before = policy_graph(policy)
    canonical = schemas.normalize_policy(body, existing=before)
    await _check_location_refs(session, tenant_id, canonical)
    _store(policy, canonical)
    policy.modified_at = utcnow()
    changed = sorted(k for k in schemas.POLICY_PROPS if before.get(k) != canonical.get(k))
    data = {"displayName": policy.display_name, "changed": changed}
    await _changed(session, tenant_id, actor, EventSpec("access.policy.updated", "policy", policy.id, data))
    return policy


async def delete_policy(session: AsyncSession, tenant_id: str, actor: Actor, policy_id: str) -> None:
    policy = await get_policy(session, tenant_id, policy_id)
    name = policy.display_name
    await PolicyRepository(session, tenant_id).remove(policy)
    await _changed(
        session,
        tenant_id,
        actor,
        EventSpec("access.policy.deleted", "policy", policy_id, {"displayName": name}),
    )


async def create_from_templates(
    session: AsyncSession,
    tenant_id: str,
    actor: Actor,
    *,
    template_ids: Sequence[str] | None,
    state: str,
    exclude_users: list[str],
    exclude_groups: list[str],
) -> list[ConditionalAccessPolicy]:
    """The chosen templates (all of them when ``template_ids`` is None) as policies, in one transaction."""
    chosen = list(templates.TEMPLATES)
    if template_ids is not None:
        unknown = [t for t in template_ids if t not in templates.BY_ID]
        if unknown:
            raise schemas.bad(f"'{unknown[0]}' is not the id of a conditional access template.")
        chosen = [templates.BY_ID[t] for t in dict.fromkeys(template_ids)]
    created = []
    for template in chosen:
        body = template.policy_body(state=state, exclude_users=exclude_users, exclude_groups=exclude_groups)
        created.append(await create_policy(session, tenant_id, actor, body))
    return created


# ---------------------------------------------------------------- named locations


async def get_location(session: AsyncSession, tenant_id: str, location_id: str) -> NamedLocation:
    location = (
        await NamedLocationRepository(session, tenant_id).get(location_id) if is_uuid(location_id) else None
    )
    if location is None:
        raise _not_found("named location", location_id)
    return location


def _store_location(location: NamedLocation, canonical: dict[str, Any]) -> None:
    location.kind = "ip" if canonical["@odata.type"] == schemas.IP_LOCATION else "country"
    location.display_name = canonical["displayName"]
    location.is_trusted = bool(canonical.get("isTrusted"))
    location.body = canonical


async def create_location(
    session: AsyncSession, tenant_id: str, actor: Actor, body: dict[str, Any]
) -> NamedLocation:
    canonical = schemas.normalize_named_location(body)
    repo = NamedLocationRepository(session, tenant_id)
    if await repo.count() >= schemas.MAX_NAMED_LOCATIONS:
        raise schemas.bad(f"A tenant can have at most {schemas.MAX_NAMED_LOCATIONS} named locations.")
    location = NamedLocation(id=new_id(), created_at=utcnow())
    _store_location(location, canonical)
    repo.add(location)
    await _changed(
        session,
        tenant_id,
        actor,
        EventSpec(
            "access.named_location.created",
            "namedLocation",
            location.id,
            {"displayName": location.display_name},
        ),
    )
    return location


async def update_location(
    session: AsyncSession, tenant_id: str, actor: Actor, location_id: str, body: dict[str, Any]
) -> NamedLocation:
    location = await get_location(session, tenant_id, location_id)
    canonical = schemas.normalize_named_location(body, existing=location.body)
    _store_location(location, canonical)
    location.modified_at = utcnow()
    await _changed(
        session,
        tenant_id,
        actor,
        EventSpec(
            "access.named_location.updated",
            "namedLocation",
            location.id,
            {"displayName": location.display_name},
        ),
    )
    return location


async def delete_location(session: AsyncSession, tenant_id: str, actor: Actor, location_id: str) -> None:
    location = await get_location(session, tenant_id, location_id)
    users = await PolicyRepository(session, tenant_id).referencing(location.id)
    if users:
        raise BadRequest(
            f"The named location is used by the conditional access policy '{users[0]}'; "
            "remove it from the policy first.",
            code="Request_BadRequest",
        )
    name = location.display_name
    await NamedLocationRepository(session, tenant_id).remove(location)
    await _changed(
        session,
        tenant_id,
        actor,
        EventSpec("access.named_location.deleted", "namedLocation", location_id, {"displayName": name}),
    )


# ---------------------------------------------------------------- decisions


async def policy_index(session: AsyncSession, tenant_id: str) -> PolicyIndex:
    """The tenant's compiled index: reused while the stored revision is unchanged, rebuilt when it moved."""
    revision = await RevisionRepository(session, tenant_id).current()
    cached = _INDEXES.get(tenant_id)
    if cached is not None and cached.revision == revision:
        return cached
    # Read after the revision: a change committed in between makes this index newer than its label,
    # which only costs one extra rebuild later, never a stale decision.
    policies = await PolicyRepository(session, tenant_id).all()
    locations = await NamedLocationRepository(session, tenant_id).all()
    index = compile_index(
        revision,
        [(p.id, policy_graph(p)) for p in policies],
        [(loc.id, loc.body) for loc in locations],
    )
    _INDEXES[tenant_id] = index
    return index


async def evaluate_sign_in(
    session: AsyncSession, tenant_id: str, context: SignInContext, *, explain: bool = False
) -> Decision:
    """The conditional access decision for one sign-in. ``context`` carries groups and roles already
    resolved (``user_sign_in_context`` resolves groups from the directory at call time)."""
    return evaluate(await policy_index(session, tenant_id), context, explain=explain)


async def user_sign_in_context(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    *,
    role_ids: frozenset[str] = frozenset(),
    guest_type: str | None = None,
    device: DeviceInfo | None = None,
    **conditions: Any,
) -> SignInContext:
    """A user's sign-in context with the user's transitive groups read from the directory now (never
    cached, so a membership change decides the very next sign-in). A guest account (userType Guest) is an
    internal guest unless the caller says which kind of external user it is. Unless the caller gives
    ``user_risk``, it is the user's current risk from identity protection (so a user confirmed compromised
    a moment ago is high risk at the next decision); the sign-in path passes ``sign_in_risk`` from
    ``protection.service.assess``."""
    user = await directory.get_user(session, tenant_id, user_id)
    groups = frozenset(await directory.member_group_ids(session, tenant_id, user.id))
    if conditions.get("user_risk") is None:
        conditions["user_risk"] = await protection.current_user_risk(session, tenant_id, user.id)
    if guest_type is None and (user.user_type or "").lower() == "guest":
        guest_type = "internalGuest"
    return SignInContext(
        user_id=user.id,
        group_ids=groups,
        role_ids=role_ids,
        guest_type=guest_type,
        device=device,
        **conditions,
    )
