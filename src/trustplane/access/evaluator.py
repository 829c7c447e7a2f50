"""The decision: a sign-in context against a compiled policy index. Every applicable policy applies
(assignments are ANDed), exclusions beat inclusions, block wins, unmet grant controls are returned in Entra's
prompt order, report-only policies are evaluated and reported but never enforced. With ``explain`` every
policy of the tenant is evaluated and each one that does not apply says why, in Graph's ``analysisReasons``
words; without it only the policies the index says could apply are looked at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from trustplane.access.compiler import ALL_APPS, CompiledPolicy, PolicyIndex, prompt_rank

# Controls a user can satisfy by interacting (a report-only policy needing one is "interrupted").
INTERACTIVE = frozenset({"mfa", "passwordChange", "riskRemediation"})


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A registered device's filter attributes, keyed by lower-case property name. An unregistered device is
    ``SignInContext.device = None`` (all of its properties are null)."""

    attributes: Mapping[str, Any]

    @classmethod
    def from_graph(cls, values: Mapping[str, Any]) -> DeviceInfo:
        attributes = {k.lower(): v for k, v in values.items() if not k.startswith("@") and v is not None}
        if "ownership" in attributes and "deviceownership" not in attributes:
            attributes["deviceownership"] = attributes["ownership"]
        return cls(attributes)

    @property
    def is_compliant(self) -> bool:
        value = self.attributes.get("iscompliant")
        return value is True or (isinstance(value, str) and value.lower() == "true")

    @property
    def is_hybrid_joined(self) -> bool:
        return str(self.attributes.get("trusttype", "")).lower() == "serverad"


@dataclass(frozen=True, slots=True)
class SignInContext:
    """Everything a decision needs, resolved beforehand: the caller resolves transitive groups and roles at
    sign-in time (no cache), identity protection supplies the risk levels, the IdP the satisfied controls."""

    user_id: str | None = None
    group_ids: frozenset[str] = frozenset()
    role_ids: frozenset[str] = frozenset()
    guest_type: str | None = None  # a conditionalAccessGuestOrExternalUserTypes member; None for members
    external_tenant_id: str | None = None
    service_principal_id: str | None = None  # set for a workload-identity sign-in (then user_id is None)
    app_id: str | None = None
    user_action: str | None = None  # urn:user:registersecurityinfo | urn:user:registerdevice
    auth_context: str | None = None  # c1 … c99
    client_app_type: str | None = "browser"
    platform: str | None = None
    ip_address: str | None = None
    country: str | None = None
    device: DeviceInfo | None = None
    sign_in_risk: str = "none"
    user_risk: str = "none"
    service_principal_risk: str = "none"
    insider_risk: str | None = None
    transfer_method: str | None = None
    satisfied_controls: frozenset[str] = frozenset()  # e.g. {"mfa"} once the user passed MFA

    def resource_keys(self) -> tuple[str, ...]:
        if self.user_action is not None:
            return (f"action:{self.user_action}",)
        if self.auth_context is not None:
            return (f"context:{self.auth_context}",)
        return (ALL_APPS, self.app_id) if self.app_id else (ALL_APPS,)


class PolicyResult(NamedTuple):
    policy_id: str
    display_name: str
    state: str
    applies: bool
    result: str  # appliedConditionalAccessPolicyResult
    analysis_reasons: tuple[str, ...]  # empty when the policy applies (Graph: "notSet")
    grant_controls: tuple[str, ...] = ()
    unmet_controls: tuple[str, ...] = ()
    session_controls: tuple[str, ...] = ()

    @property
    def reasons_text(self) -> str:
        return ",".join(self.analysis_reasons) if self.analysis_reasons else "notSet"


@dataclass(slots=True)
class Decision:
    outcome: str  # "grant" | "block" | "challenge"
    required_controls: tuple[str, ...]  # unmet grant controls, in Entra's prompt order
    session_controls: Mapping[str, Any]
    results: tuple[PolicyResult, ...]  # the policies looked at (all of them when explained)
    blocked_by: tuple[str, ...] = ()
    evaluated: int = 0  # policies looked at
    total: int = 0  # policies in the tenant

    def result_for(self, policy_id: str) -> PolicyResult | None:
        """The policy's result; a policy that was not looked at did not apply."""
        return next((r for r in self.results if r.policy_id == policy_id), None)

    @property
    def status(self) -> str:
        """The sign-in log's ``conditionalAccessStatus``: failure when an enforced policy blocks or still
        wants a control, success when enforced policies applied and are satisfied, else notApplied."""
        if self.outcome != "grant":
            return "failure"
        return "success" if any(r.applies and r.result == "success" for r in self.results) else "notApplied"

    def applied_policies(self) -> list[dict[str, Any]]:
        """The sign-in log's ``appliedConditionalAccessPolicies`` (Graph's appliedConditionalAccessPolicy)."""
        return [
            {
                "id": r.policy_id,
                "displayName": r.display_name,
                "enforcedGrantControls": list(r.grant_controls),
                "enforcedSessionControls": list(r.session_controls),
                "result": r.result,
            }
            for r in self.results
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "requiredControls": list(self.required_controls),
            "sessionControls": dict(self.session_controls),
            "blockedBy": list(self.blocked_by),
            "policies": [
                {
                    "id": r.policy_id,
                    "displayName": r.display_name,
                    "result": r.result,
                    "analysisReasons": r.reasons_text,
                    "enforcedGrantControls": list(r.grant_controls),
                    "unmetGrantControls": list(r.unmet_controls),
                    "enforcedSessionControls": list(r.session_controls),
                }
                for r in self.results
            ],
        }


class _Locations:
    """The sign-in's named locations, resolved once and only if some policy has a location condition."""

    __slots__ = ("country", "ids", "index", "ip", "trusted")

    def __init__(self, index: PolicyIndex, ip: str | None, country: str | None) -> None:
        self.index, self.ip, self.country = index, ip, country
        self.ids: frozenset[str] | None = None
        self.trusted = False

    def get(self) -> tuple[frozenset[str], bool]:
        if self.ids is None:
            self.ids, self.trusted = self.index.locations.resolve(self.ip, self.country)
        return self.ids, self.trusted


def _users_match(p: CompiledPolicy, ctx: SignInContext) -> bool:
    groups, roles = ctx.group_ids, ctx.role_ids
    included = (
        p.users_all
        or (ctx.user_id in p.include_users)
        or (bool(p.include_groups) and not p.include_groups.isdisjoint(groups))
        or (bool(p.include_roles) and not p.include_roles.isdisjoint(roles))
        or (p.include_guests is not None and p.include_guests.covers(ctx.guest_type, ctx.external_tenant_id))
    )
    if not included:
        return False
    excluded = (
        (ctx.user_id in p.exclude_users)
        or (bool(p.exclude_groups) and not p.exclude_groups.isdisjoint(groups))
        or (bool(p.exclude_roles) and not p.exclude_roles.isdisjoint(roles))
        or (p.exclude_guests is not None and p.exclude_guests.covers(ctx.guest_type, ctx.external_tenant_id))
    )
    return not excluded


def _reasons(p: CompiledPolicy, ctx: SignInContext, locs: _Locations, explain: bool) -> list[str]:
    """Why ``p`` does not apply (empty: it applies). Stops at the first reason unless ``explain``."""
    reasons: list[str] = []
    if ctx.service_principal_id is not None:
        if not (
            p.targets_workloads
            and (p.sps_all or ctx.service_principal_id in p.include_sps)
            and ctx.service_principal_id not in p.exclude_sps
        ):
            reasons.append("workloadIdentities")
    elif not (p.targets_users and _users_match(p, ctx)):
        reasons.append("users")
    if reasons and not explain:
        return reasons
    if p.target_kind == "userActions":
        if ctx.user_action is None or ctx.user_action not in p.user_actions:
            reasons.append("userActions")
    elif p.target_kind == "authenticationContext":
        if ctx.auth_context is None or ctx.auth_context not in p.auth_contexts:
            reasons.append("authenticationContext")
    elif (
        ctx.user_action is not None
        or ctx.auth_context is not None
        or not (p.apps_all or ctx.app_id in p.include_apps)
        or ctx.app_id in p.exclude_apps
    ):
        reasons.append("application")
    if reasons and not explain:
        return reasons
    if p.platforms_include is not None:
        platform = ctx.platform
        included = "all" in p.platforms_include or platform in p.platforms_include
        if not included or (platform is not None and platform in p.platforms_exclude):
            reasons.append("devicePlatform")
    if p.locations_configured:
        ids, trusted = locs.get()
        included = (
            p.loc_include_all or (p.loc_include_trusted and trusted) or not p.loc_include_ids.isdisjoint(ids)
        )
        excluded = (p.loc_exclude_trusted and trusted) or not p.loc_exclude_ids.isdisjoint(ids)
        if not included or excluded:
            reasons.append("location")
    if p.client_app_types is not None:
        app_type = ctx.client_app_type
        if not (
            app_type in p.client_app_types
            or (app_type == "exchangeActiveSync" and "easSupported" in p.client_app_types)
        ):
            reasons.append("clientApps")
    if p.sign_in_risk is not None and ctx.sign_in_risk not in p.sign_in_risk:
        reasons.append("signInRisk")
    if p.user_risk is not None and ctx.user_risk not in p.user_risk:
        reasons.append("userRisk")
    if (
        p.sp_risk is not None
        and ctx.service_principal_risk not in p.sp_risk
        and "workloadIdentities" not in reasons
    ):
        reasons.append("workloadIdentities")
    if p.insider_risk is not None and ctx.insider_risk not in p.insider_risk:
        reasons.append("insiderRisk")
    if p.transfer_methods is not None and ctx.transfer_method not in p.transfer_methods:
        reasons.append("authenticationFlow")
    if p.device_filter is not None:
        matched = p.device_filter.matches(ctx.device.attributes if ctx.device is not None else None)
        if matched != p.device_filter_include:
            reasons.append("devices")
    return reasons


def _satisfied(ctx: SignInContext) -> frozenset[str]:
    extra = set()
    if ctx.device is not None:
        if ctx.device.is_compliant:
            extra.add("compliantDevice")
        if ctx.device.is_hybrid_joined:
            extra.add("domainJoinedDevice")
    return ctx.satisfied_controls | extra if extra else ctx.satisfied_controls


def _unmet(p: CompiledPolicy, satisfied: frozenset[str]) -> tuple[str, ...]:
    if not p.controls:
        return ()
    if p.require_all:
        return tuple(c for c in p.controls if c not in satisfied)
    return () if any(c in satisfied for c in p.controls) else p.controls


def _result(p: CompiledPolicy, applies: bool, unmet: tuple[str, ...]) -> str:
    if p.state == "disabled":
        return "notEnabled"
    if p.enforced:
        if not applies:
            return "notApplied"
        return "failure" if (p.block or unmet) else "success"
    if not applies:
        return "reportOnlyNotApplied"
    if p.block:
        return "reportOnlyFailure"
    if unmet:
        return "reportOnlyInterrupted" if any(c in INTERACTIVE for c in unmet) else "reportOnlyFailure"
    return "reportOnlySuccess"


def _merge_sessions(applied: list[CompiledPolicy]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    shortest: tuple[float, dict[str, Any]] | None = None
    for p in applied:
        s = p.session
        if not s:
            continue
        freq = s.get("signInFrequency")
        if freq is not None and freq.get("isEnabled", True):
            if freq.get("frequencyInterval") == "everyTime":
                hours = 0.0
            else:
                hours = float(freq.get("value") or 0) * (24 if freq.get("type") == "days" else 1)
            if shortest is None or hours < shortest[0]:
                shortest = (hours, dict(freq))
        browser = s.get("persistentBrowser")
        if browser is not None and browser.get("isEnabled", True) and browser.get("mode"):
            # The more restrictive setting wins: "never" over "always".
            if merged.get("persistentBrowser", {}).get("mode") != "never":
                merged["persistentBrowser"] = {"isEnabled": True, "mode": browser["mode"]}
        restrictions = s.get("applicationEnforcedRestrictions")
        if restrictions is not None and restrictions.get("isEnabled"):
            merged["applicationEnforcedRestrictions"] = {"isEnabled": True}
        mcas = s.get("cloudAppSecurity")
        if mcas is not None and mcas.get("isEnabled"):
            merged["cloudAppSecurity"] = {
                "isEnabled": True,
                "cloudAppSecurityType": mcas.get("cloudAppSecurityType"),
            }
        if s.get("disableResilienceDefaults"):
            merged["disableResilienceDefaults"] = True
    if shortest is not None:
        merged["signInFrequency"] = shortest[1]
    return merged


def evaluate(index: PolicyIndex, ctx: SignInContext, *, explain: bool = False) -> Decision:
    policies = index.policies
    if explain:
        ordinals: list[int] | range = range(len(policies))
    else:
        ordinals = index.candidates(
            user_id=ctx.user_id,
            group_ids=ctx.group_ids,
            role_ids=ctx.role_ids,
            guest=ctx.guest_type is not None,
            service_principal_id=ctx.service_principal_id,
            resource_keys=ctx.resource_keys(),
        )
    locs = _Locations(index, ctx.ip_address, ctx.country)
    satisfied = _satisfied(ctx)
    results: list[PolicyResult] = []
    applied: list[CompiledPolicy] = []
    blocked_by: list[str] = []
    required_all: set[str] = set()
    alternatives: list[tuple[str, ...]] = []
    for ordinal in ordinals:
        p = policies[ordinal]
        if p.state == "disabled":
            results.append(
                PolicyResult(p.id, p.display_name, p.state, False, "notEnabled", ("policyNotEnabled",))
            )
            continue
        reasons = _reasons(p, ctx, locs, explain)
        if reasons:
            results.append(
                PolicyResult(p.id, p.display_name, p.state, False, _result(p, False, ()), tuple(reasons))
            )
            continue
        unmet = _unmet(p, satisfied)
        grant = ("block",) if p.block else p.controls
        results.append(
            PolicyResult(
                p.id,
                p.display_name,
                p.state,
                True,
                _result(p, True, unmet),
                (),
                grant,
                unmet,
                p.session_names,
            )
        )
        if not p.enforced:
            continue  # report-only: evaluated and reported, never enforced
        applied.append(p)
        if p.block:
            blocked_by.append(p.id)
        elif unmet:
            if p.require_all:
                required_all.update(unmet)
            else:
                alternatives.append(unmet)
    if blocked_by:
        return Decision("block", (), {}, tuple(results), tuple(blocked_by), len(ordinals), len(policies))
    required = set(required_all)
    for options in alternatives:
        # "Require one of": prompts follow the order and access is granted once one is met, so an OR policy
        # is covered by a control another policy already requires, else it asks for its first option.
        if required.isdisjoint(options):
            required.add(min(options, key=prompt_rank))
    ordered = tuple(sorted(required, key=prompt_rank))
    return Decision(
        "challenge" if ordered else "grant",
        ordered,
        _merge_sessions(applied) if any(p.session for p in applied) else {},
        tuple(results),
        (),
        len(ordinals),
        len(policies),
    )
