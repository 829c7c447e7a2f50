"""Policies compiled into an index when they change. Each policy becomes a ``CompiledPolicy`` of frozensets
and a parsed device filter; the ``PolicyIndex`` files every enabled or report-only policy under the users it
names (a user id, a group id, a role id, All, guests, or service principals) and, inside that, under the
resources it targets (an app id, All, a user action, an authentication context). A decision looks up only
the buckets its sign-in can reach, so it costs time in proportion to the policies that could apply."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trustplane.access.device_filter import DeviceFilter, parse_rule
from trustplane.access.schemas import GUEST_TYPES, MFA_STRENGTH_ID

# Entra prompts unmet grant controls in this order (terms of use and custom controls come last).
PROMPT_ORDER = (
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
    "riskRemediation",
)
_PROMPT_RANK = {name: i for i, name in enumerate(PROMPT_ORDER)}
ALL_GUEST_TYPES = frozenset(GUEST_TYPES) - {"none", "unknownFutureValue"}
ALL_APPS = "*"


def prompt_rank(control: str) -> tuple[int, str]:
    if control in _PROMPT_RANK:
        return (_PROMPT_RANK[control], "")
    return (len(PROMPT_ORDER) + (0 if control.startswith("termsOfUse:") else 1), control)


@dataclass(frozen=True, slots=True)
class GuestScope:
    types: frozenset[str]
    tenants: frozenset[str] | None  # None: every external tenant

    def covers(self, guest_type: str | None, tenant: str | None) -> bool:
        if guest_type is None or guest_type not in self.types:
            return False
        return self.tenants is None or (tenant is not None and tenant in self.tenants)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    ordinal: int
    id: str
    display_name: str
    state: str
    enforced: bool
    targets_users: bool
    users_all: bool
    include_users: frozenset[str]
    include_groups: frozenset[str]
    include_roles: frozenset[str]
    include_guests: GuestScope | None
    exclude_users: frozenset[str]
    exclude_groups: frozenset[str]
    exclude_roles: frozenset[str]
    exclude_guests: GuestScope | None
    targets_workloads: bool
    sps_all: bool
    include_sps: frozenset[str]
    exclude_sps: frozenset[str]
    target_kind: str  # "application" | "userActions" | "authenticationContext"
    apps_all: bool
    include_apps: frozenset[str]
    exclude_apps: frozenset[str]
    user_actions: frozenset[str]
    auth_contexts: frozenset[str]
    client_app_types: frozenset[str] | None  # None: all client apps
    platforms_include: frozenset[str] | None  # None: platforms not configured
    platforms_exclude: frozenset[str]
    locations_configured: bool
    loc_include_all: bool
    loc_include_trusted: bool
    loc_include_ids: frozenset[str]
    loc_exclude_trusted: bool
    loc_exclude_ids: frozenset[str]
    sign_in_risk: frozenset[str] | None
    user_risk: frozenset[str] | None
    sp_risk: frozenset[str] | None
    insider_risk: frozenset[str] | None
    transfer_methods: frozenset[str] | None
    device_filter: DeviceFilter | None
    device_filter_include: bool
    block: bool
    require_all: bool  # operator AND
    controls: tuple[str, ...]  # in prompt order
    session: Mapping[str, Any] | None
    session_names: tuple[str, ...]


def _set(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(values or ())


def _flags(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def _guests(raw: Mapping[str, Any] | None) -> GuestScope | None:
    if raw is None:
        return None
    types = _flags(raw.get("guestOrExternalUserTypes")) or frozenset()
    tenants_raw = raw.get("externalTenants")
    tenants = None
    if tenants_raw is not None and tenants_raw.get("membershipKind") == "enumerated":
        tenants = _set(tenants_raw.get("members"))
    return GuestScope(types - {"none"}, tenants)


def _session_names(session: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not session:
        return ()
    names: list[str] = []
    for key in (
        "applicationEnforcedRestrictions",
        "cloudAppSecurity",
        "persistentBrowser",
        "signInFrequency",
    ):
        value = session.get(key)
        if value is not None and value.get("isEnabled", True):
            names.append(key)
    if session.get("disableResilienceDefaults"):
        names.append("disableResilienceDefaults")
    return tuple(names)


def compile_policy(ordinal: int, policy_id: str, policy: Mapping[str, Any]) -> CompiledPolicy:
    """One canonical policy (schemas.normalize_policy) as the evaluator reads it."""
    cond = policy["conditions"]
    users = cond.get("users") or {}
    clients = cond.get("clientApplications") or {}
    apps = cond.get("applications") or {}
    include_users = list(users.get("includeUsers") or [])
    include_guests = _guests(users.get("includeGuestsOrExternalUsers"))
    if "GuestsOrExternalUsers" in include_users:  # the older spelling of "every guest or external user"
        include_guests = GuestScope(ALL_GUEST_TYPES, None)
    exclude_users = list(users.get("excludeUsers") or [])
    exclude_guests = _guests(users.get("excludeGuestsOrExternalUsers"))
    if "GuestsOrExternalUsers" in exclude_users:
        exclude_guests = GuestScope(ALL_GUEST_TYPES, None)
    targets_users = bool(
        [u for u in include_users if u != "None"]
        or users.get("includeGroups")
        or users.get("includeRoles")
        or include_guests
    )
    include_sps = list(clients.get("includeServicePrincipals") or [])
    if apps.get("includeUserActions"):
        target_kind = "userActions"
    elif apps.get("includeAuthenticationContextClassReferences"):
        target_kind = "authenticationContext"
    else:
        target_kind = "application"
    client_types = _set(cond.get("clientAppTypes"))
    platforms = cond.get("platforms")
    locations = cond.get("locations")
    include_locations = _set(locations.get("includeLocations")) if locations else frozenset()
    exclude_locations = _set(locations.get("excludeLocations")) if locations else frozenset()
    devices = cond.get("devices") or {}
    device_filter = devices.get("deviceFilter")
    grant = policy.get("grantControls") or {}
    built_in = list(grant.get("builtInControls") or [])
    controls = [c for c in built_in if c not in ("block", "unknownFutureValue")]
    strength = grant.get("authenticationStrength")
    if strength is not None and strength.get("id") == MFA_STRENGTH_ID and "mfa" not in controls:
        controls.append("mfa")
    controls += [f"termsOfUse:{t}" for t in grant.get("termsOfUse") or []]
    controls += [f"custom:{c}" for c in grant.get("customAuthenticationFactors") or []]

    def levels(key: str) -> frozenset[str] | None:
        values = cond.get(key)
        return frozenset(values) if values else None

    return CompiledPolicy(
        ordinal=ordinal,
        id=policy_id,
        display_name=policy["displayName"],
        state=policy["state"],
        enforced=policy["state"] == "enabled",
        targets_users=targets_users,
        users_all="All" in include_users,
        include_users=frozenset(
            u for u in include_users if u not in ("All", "None", "GuestsOrExternalUsers")
        ),
        include_groups=_set(users.get("includeGroups")),
        include_roles=_set(users.get("includeRoles")),
        include_guests=include_guests,
        exclude_users=frozenset(u for u in exclude_users if u != "GuestsOrExternalUsers"),
        exclude_groups=_set(users.get("excludeGroups")),
        exclude_roles=_set(users.get("excludeRoles")),
        exclude_guests=exclude_guests,
        targets_workloads=bool(include_sps),
        sps_all="ServicePrincipalsInMyTenant" in include_sps,
        include_sps=frozenset(s for s in include_sps if s != "ServicePrincipalsInMyTenant"),
        exclude_sps=_set(clients.get("excludeServicePrincipals")),
        target_kind=target_kind,
        apps_all="All" in (apps.get("includeApplications") or ()),
        include_apps=frozenset(a for a in apps.get("includeApplications") or () if a not in ("All", "None")),
        exclude_apps=_set(apps.get("excludeApplications")),
        user_actions=_set(apps.get("includeUserActions")),
        auth_contexts=_set(apps.get("includeAuthenticationContextClassReferences")),
        client_app_types=None if not client_types or "all" in client_types else client_types,
        platforms_include=_set(platforms.get("includePlatforms")) if platforms else None,
        platforms_exclude=_set(platforms.get("excludePlatforms")) if platforms else frozenset(),
        locations_configured=locations is not None,
        loc_include_all="All" in include_locations,
        loc_include_trusted="AllTrusted" in include_locations,
        loc_include_ids=include_locations - {"All", "AllTrusted"},
        loc_exclude_trusted="AllTrusted" in exclude_locations,
        loc_exclude_ids=exclude_locations - {"AllTrusted"},
        sign_in_risk=levels("signInRiskLevels"),
        user_risk=levels("userRiskLevels"),
        sp_risk=levels("servicePrincipalRiskLevels"),
        insider_risk=_flags(cond.get("insiderRiskLevels")),
        transfer_methods=_flags((cond.get("authenticationFlows") or {}).get("transferMethods")),
        device_filter=parse_rule(device_filter["rule"]) if device_filter else None,
        device_filter_include=device_filter is not None and device_filter["mode"] == "include",
        block="block" in built_in,
        require_all=grant.get("operator", "AND") != "OR",
        controls=tuple(sorted(dict.fromkeys(controls), key=prompt_rank)),
        session=policy.get("sessionControls"),
        session_names=_session_names(policy.get("sessionControls")),
    )


# ---------------------------------------------------------------- named locations


class LocationTable:
    """Named locations resolved for one IP address and country: which locations contain them, and whether
    any of those is trusted. CIDR ranges are hashed per prefix length, so a lookup costs one dict probe per
    distinct prefix length in use, not one test per range."""

    def __init__(self, locations: Iterable[tuple[str, Mapping[str, Any]]] = ()) -> None:
        self.cidr: dict[int, dict[int, dict[int, list[str]]]] = {4: {}, 6: {}}  # version -> len -> net
        self.ranges: list[tuple[int, int, int, str]] = []  # (version, low, high, id)
        self.trusted: set[str] = set()
        self.countries: dict[str, list[str]] = {}
        self.unknown_country: list[str] = []
        for location_id, body in locations:
            if body["@odata.type"].endswith("ipNamedLocation"):
                if body.get("isTrusted"):
                    self.trusted.add(location_id)
                for r in body.get("ipRanges") or ():
                    if "cidrAddress" in r:
                        net = ipaddress.ip_network(r["cidrAddress"], strict=False)
                        by_len = self.cidr[net.version].setdefault(net.prefixlen, {})
                        by_len.setdefault(int(net.network_address), []).append(location_id)
                    else:
                        low = ipaddress.ip_address(r["lowerAddress"])
                        high = ipaddress.ip_address(r["upperAddress"])
                        self.ranges.append((low.version, int(low), int(high), location_id))
            else:
                for code in body.get("countriesAndRegions") or ():
                    self.countries.setdefault(code.upper(), []).append(location_id)
                if body.get("includeUnknownCountriesAndRegions"):
                    self.unknown_country.append(location_id)

    def resolve(self, ip: str | None, country: str | None) -> tuple[frozenset[str], bool]:
        found: set[str] = set()
        if ip:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                address = None
            if address is not None:
                value, bits = int(address), address.max_prefixlen
                for prefix, nets in self.cidr[address.version].items():
                    hit = nets.get(value >> (bits - prefix) << (bits - prefix) if prefix else 0)
                    if hit:
                        found.update(hit)
                for version, low, high, location_id in self.ranges:
                    if version == address.version and low <= value <= high:
                        found.add(location_id)
        if country:
            found.update(self.countries.get(country.upper(), ()))
        else:
            found.update(self.unknown_country)
        return frozenset(found), not self.trusted.isdisjoint(found)


# ---------------------------------------------------------------- the index

Buckets = dict[str, list[int]]


@dataclass
class PolicyIndex:
    revision: int
    policies: tuple[CompiledPolicy, ...]
    locations: LocationTable
    users_all: Buckets = field(default_factory=dict)
    users: dict[str, Buckets] = field(default_factory=dict)
    groups: dict[str, Buckets] = field(default_factory=dict)
    roles: dict[str, Buckets] = field(default_factory=dict)
    guests: Buckets = field(default_factory=dict)
    sps_all: Buckets = field(default_factory=dict)
    sps: dict[str, Buckets] = field(default_factory=dict)
    group_keys: frozenset[str] = frozenset()
    role_keys: frozenset[str] = frozenset()

    def candidates(
        self,
        *,
        user_id: str | None,
        group_ids: frozenset[str],
        role_ids: frozenset[str],
        guest: bool,
        service_principal_id: str | None,
        resource_keys: tuple[str, ...],
    ) -> list[int]:
        """Ordinals of the enabled and report-only policies whose users and resources could match."""
        found: set[int] = set()
        reached: list[Buckets] = []
        if service_principal_id is not None:
            reached.append(self.sps_all)
            by_sp = self.sps.get(service_principal_id)
            if by_sp:
                reached.append(by_sp)
        else:
            reached.append(self.users_all)
            if user_id is not None:
                by_user = self.users.get(user_id)
                if by_user:
                    reached.append(by_user)
            if group_ids:
                reached.extend(self.groups[g] for g in self.group_keys.intersection(group_ids))
            if role_ids:
                reached.extend(self.roles[r] for r in self.role_keys.intersection(role_ids))
            if guest:
                reached.append(self.guests)
        for buckets in reached:
            for key in resource_keys:
                hit = buckets.get(key)
                if hit:
                    found.update(hit)
        return sorted(found)


def _resource_keys(p: CompiledPolicy) -> list[str]:
    if p.target_kind == "userActions":
        return [f"action:{a}" for a in p.user_actions]
    if p.target_kind == "authenticationContext":
        return [f"context:{c}" for c in p.auth_contexts]
    return ([ALL_APPS] if p.apps_all else []) + sorted(p.include_apps)


def compile_index(
    revision: int,
    policies: Iterable[tuple[str, Mapping[str, Any]]],
    locations: Iterable[tuple[str, Mapping[str, Any]]],
) -> PolicyIndex:
    compiled = tuple(compile_policy(i, pid, body) for i, (pid, body) in enumerate(policies))
    index = PolicyIndex(revision, compiled, LocationTable(locations))

    def file(buckets: Buckets, p: CompiledPolicy) -> None:
        for key in _resource_keys(p):
            buckets.setdefault(key, []).append(p.ordinal)

    for p in compiled:
        if p.state == "disabled":
            continue  # never applies; What-If still explains it from ``policies``
        if p.targets_workloads:
            if p.sps_all:
                file(index.sps_all, p)
            for sp in p.include_sps:
                file(index.sps.setdefault(sp, {}), p)
            continue
        if p.users_all:
            file(index.users_all, p)
        for user_id in p.include_users:
            file(index.users.setdefault(user_id, {}), p)
        for group_id in p.include_groups:
            file(index.groups.setdefault(group_id, {}), p)
        for role_id in p.include_roles:
            file(index.roles.setdefault(role_id, {}), p)
        if p.include_guests is not None:
            file(index.guests, p)
    index.group_keys = frozenset(index.groups)
    index.role_keys = frozenset(index.roles)
    return index
