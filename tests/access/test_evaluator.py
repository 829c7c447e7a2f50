"""The engine on its own (no database): roles, report-only results, control combination, session merging,
and that the compiled index only narrows the work — the fast path decides exactly as evaluating every policy
does, and a decision looks at the policies that could apply, not at all of them."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trustplane.access.compiler import compile_index
from trustplane.access.evaluator import DeviceInfo, SignInContext, evaluate
from trustplane.access.schemas import normalize_policy

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER = "11111111-1111-4111-8111-111111111111"
APP = "22222222-2222-4222-8222-222222222222"


def policy(**overrides: Any) -> dict[str, Any]:
    grant = overrides.pop("grant", {"operator": "OR", "builtInControls": ["mfa"]})
    session = overrides.pop("session", None)
    state = overrides.pop("state", "enabled")
    conditions = {
        "users": {"includeUsers": ["All"]},
        "applications": {"includeApplications": ["All"]},
        **overrides,
    }
    body: dict[str, Any] = {"displayName": "p", "state": state, "conditions": conditions}
    if grant is not None:
        body["grantControls"] = grant
    if session is not None:
        body["sessionControls"] = session
    return normalize_policy(body)


def index_of(*policies: dict[str, Any]) -> Any:
    return compile_index(1, [(str(uuid.uuid4()), p) for p in policies], [])


def test_included_role_applies_and_excluded_role_wins() -> None:
    idx = index_of(
        policy(users={"includeRoles": [GLOBAL_ADMIN]}),
        policy(
            users={"includeUsers": ["All"], "excludeRoles": [GLOBAL_ADMIN]},
            grant={"operator": "OR", "builtInControls": ["block"]},
        ),
    )
    admin = evaluate(idx, SignInContext(user_id=USER, role_ids=frozenset({GLOBAL_ADMIN}), app_id=APP))
    other = evaluate(idx, SignInContext(user_id=USER, app_id=APP))
    assert (admin.outcome, admin.required_controls) == ("challenge", ("mfa",))
    assert other.outcome == "block"


def test_report_only_results_name_what_would_have_happened() -> None:
    idx = index_of(
        policy(state="enabledForReportingButNotEnforced"),
        policy(
            state="enabledForReportingButNotEnforced",
            grant={"operator": "OR", "builtInControls": ["compliantDevice"]},
        ),
        policy(
            state="enabledForReportingButNotEnforced", grant={"operator": "OR", "builtInControls": ["block"]}
        ),
        policy(state="enabledForReportingButNotEnforced", signInRiskLevels=["high"]),
    )
    decision = evaluate(idx, SignInContext(user_id=USER, app_id=APP))
    assert [r.result for r in decision.results] == [
        "reportOnlyInterrupted",
        "reportOnlyFailure",
        "reportOnlyFailure",
        "reportOnlyNotApplied",
    ]
    assert decision.outcome == "grant"
    done = evaluate(idx, SignInContext(user_id=USER, app_id=APP, satisfied_controls=frozenset({"mfa"})))
    assert done.results[0].result == "reportOnlySuccess"


def test_enabled_results_success_failure_not_applied_not_enabled() -> None:
    idx = index_of(policy(), policy(signInRiskLevels=["high"]), policy(state="disabled"))
    before = evaluate(idx, SignInContext(user_id=USER, app_id=APP), explain=True)
    after = evaluate(
        idx, SignInContext(user_id=USER, app_id=APP, satisfied_controls=frozenset({"mfa"})), explain=True
    )
    assert [r.result for r in before.results] == ["failure", "notApplied", "notEnabled"]
    assert [r.result for r in after.results] == ["success", "notApplied", "notEnabled"]
    assert after.outcome == "grant"


def test_an_or_policy_is_covered_by_a_control_another_policy_requires() -> None:
    idx = index_of(
        policy(grant={"operator": "AND", "builtInControls": ["compliantDevice"]}),
        policy(grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]}),
    )
    decision = evaluate(idx, SignInContext(user_id=USER, app_id=APP))
    assert decision.required_controls == ("compliantDevice",)


def test_terms_of_use_come_after_built_in_controls() -> None:
    idx = index_of(policy(grant={"operator": "AND", "builtInControls": ["mfa"], "termsOfUse": ["tou-1"]}))
    assert evaluate(idx, SignInContext(user_id=USER, app_id=APP)).required_controls == (
        "mfa",
        "termsOfUse:tou-1",
    )


def test_persistent_browser_never_beats_always() -> None:
    idx = index_of(
        policy(grant=None, session={"persistentBrowser": {"isEnabled": True, "mode": "always"}}),
        policy(grant=None, session={"persistentBrowser": {"isEnabled": True, "mode": "never"}}),
    )
    decision = evaluate(idx, SignInContext(user_id=USER, app_id=APP))
    assert decision.session_controls["persistentBrowser"]["mode"] == "never"


def test_every_time_sign_in_frequency_beats_hours() -> None:
    idx = index_of(
        policy(grant=None, session={"signInFrequency": {"isEnabled": True, "type": "hours", "value": 1}}),
        policy(
            grant=None, session={"signInFrequency": {"isEnabled": True, "frequencyInterval": "everyTime"}}
        ),
    )
    assert (
        evaluate(idx, SignInContext(user_id=USER, app_id=APP)).session_controls["signInFrequency"][
            "frequencyInterval"
        ]
        == "everyTime"
    )


def test_a_decision_looks_only_at_the_policies_that_could_apply() -> None:
    groups = [str(uuid.uuid4()) for _ in range(1000)]
    idx = index_of(*(policy(users={"includeGroups": [g]}) for g in groups))
    decision = evaluate(idx, SignInContext(user_id=USER, group_ids=frozenset(groups[:3]), app_id=APP))
    assert decision.total == 1000
    assert decision.evaluated == 3
    assert decision.required_controls == ("mfa",)


GROUPS = [str(uuid.UUID(int=i + 1)) for i in range(4)]
APPS = [str(uuid.UUID(int=100 + i)) for i in range(3)]
ROLE = GLOBAL_ADMIN


@st.composite
def policies(draw: Any) -> dict[str, Any]:
    include = draw(
        st.sampled_from(
            [
                {"includeUsers": ["All"]},
                {"includeUsers": [USER]},
                {"includeGroups": draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=2))},
                {"includeRoles": [ROLE]},
                {"includeUsers": ["GuestsOrExternalUsers"]},
            ]
        )
    )
    users = {**include, "excludeGroups": draw(st.lists(st.sampled_from(GROUPS), max_size=1))}
    apps = draw(st.sampled_from([["All"], [APPS[0]], APPS[1:]]))
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["platforms"] = {
            "includePlatforms": draw(st.sampled_from([["all"], ["android"], ["iOS", "windows"]])),
            "excludePlatforms": draw(st.lists(st.sampled_from(["iOS", "macOS"]), max_size=1)),
        }
    if draw(st.booleans()):
        extra["clientAppTypes"] = draw(st.sampled_from([["exchangeActiveSync", "other"], ["browser"]]))
    if draw(st.booleans()):
        extra["signInRiskLevels"] = draw(st.sampled_from([["high"], ["high", "medium"]]))
    if draw(st.booleans()):
        extra["devices"] = {
            "deviceFilter": {
                "mode": draw(st.sampled_from(["include", "exclude"])),
                "rule": draw(
                    st.sampled_from(
                        ['device.trustType -eq "AzureAD"', 'device.extensionAttribute1 -ne "SAW"']
                    )
                ),
            }
        }
    grant = draw(
        st.sampled_from(
            [
                {"operator": "OR", "builtInControls": ["block"]},
                {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]},
                {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]},
            ]
        )
    )
    state = draw(st.sampled_from(["enabled", "enabled", "disabled", "enabledForReportingButNotEnforced"]))
    return policy(users=users, applications={"includeApplications": apps}, grant=grant, state=state, **extra)


contexts = st.builds(
    SignInContext,
    user_id=st.sampled_from([USER, str(uuid.UUID(int=999))]),
    group_ids=st.frozensets(st.sampled_from(GROUPS)),
    role_ids=st.frozensets(st.just(ROLE)),
    guest_type=st.sampled_from([None, "internalGuest"]),
    app_id=st.sampled_from(APPS),
    client_app_type=st.sampled_from(["browser", "exchangeActiveSync", "other"]),
    platform=st.sampled_from([None, "android", "iOS", "macOS"]),
    sign_in_risk=st.sampled_from(["none", "medium", "high"]),
    device=st.sampled_from(
        [
            None,
            DeviceInfo.from_graph({"trustType": "AzureAD", "isCompliant": True}),
            DeviceInfo.from_graph({"extensionAttribute1": "SAW"}),
        ]
    ),
    satisfied_controls=st.frozensets(st.sampled_from(["mfa", "compliantDevice"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(policies(), min_size=1, max_size=8), contexts)
def test_the_index_decides_exactly_as_evaluating_every_policy(
    bodies: list[dict[str, Any]], ctx: SignInContext
) -> None:
    idx = index_of(*bodies)
    fast, full = evaluate(idx, ctx), evaluate(idx, ctx, explain=True)
    assert (fast.outcome, fast.required_controls, fast.blocked_by) == (
        full.outcome,
        full.required_controls,
        full.blocked_by,
    )
    assert dict(fast.session_controls) == dict(full.session_controls)
    applied = {r.policy_id: r.result for r in full.results if r.applies}
    assert {r.policy_id: r.result for r in fast.results if r.applies} == applied


def test_sign_in_log_status_and_applied_policies() -> None:
    idx = index_of(policy(), policy(signInRiskLevels=["high"]))
    pending = evaluate(idx, SignInContext(user_id=USER, app_id=APP))
    done = evaluate(idx, SignInContext(user_id=USER, app_id=APP, satisfied_controls=frozenset({"mfa"})))
    untouched = evaluate(index_of(policy(signInRiskLevels=["high"])), SignInContext(user_id=USER, app_id=APP))
    assert (pending.status, done.status, untouched.status) == ("failure", "success", "notApplied")
    assert done.applied_policies()[0] | {"id": ""} == {
        "id": "",
        "displayName": "p",
        "enforcedGrantControls": ["mfa"],
        "enforcedSessionControls": [],
        "result": "success",
    }
