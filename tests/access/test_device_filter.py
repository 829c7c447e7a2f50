"""The device-filter rule parser: the rules from the Entra docs parse and behave as documented; bad rules are
refused with their position; through the Graph face, any rule at all gives 201 or a Graph 400, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import TenantHandle, TestServer
from trustplane.access.device_filter import MAX_RULE_LENGTH, DeviceFilterError, parse_rule

# Rules as the "Filter for devices" page writes them (its table's examples and scenarios).
DOC_RULES = [
    '(device.deviceid -eq "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb")',
    '(device.displayName -contains "ABC")',
    '(device.deviceOwnership -eq "Company")',
    '(device.enrollmentProfileName -startsWith "AutoPilot Profile")',
    '(device.isCompliant -eq "True")',
    '(device.manufacturer -startsWith "Microsoft")',
    '(device.mdmAppId -in ["00001111-aaaa-2222-bbbb-3333cccc4444"])',
    '(device.model -notContains "Surface")',
    '(device.operatingSystem -eq "Windows")',
    '(device.operatingSystemVersion -in ["10.0.18363", "10.0.19041", "10.0.19042", "10.0.22000"])',
    '(device.physicalIds -contains "[ZTDId]:value")',
    '(device.profileType -eq "Printer")',
    '(device.systemLabels -contains "M365Managed")',
    '(device.trustType -eq "ServerAD")',
    '(device.extensionAttribute1 -eq "SAW")',
    'device.extensionAttribute1 -ne "SAW"',
    'device.extensionAttribute2 -ne "TeamsPhoneDevice"',
    '(device.operatingSystem -eq "Windows") -and (device.operatingSystemVersion -startsWith "10.0")',
    '(device.operatingSystem -eq "Windows") and (device.operatingSystemVersion -startsWith "10.0")',
]


@pytest.mark.parametrize("rule", DOC_RULES)
def test_documented_rules_parse(rule: str) -> None:
    assert parse_rule(rule).rule == rule


@pytest.mark.parametrize(
    ("rule", "unregistered"),
    [
        ('device.trustType -eq "AzureAD"', False),
        ('device.model -startsWith "Surface"', False),
        ('device.model -endsWith "Pro"', False),
        ('device.model -contains "Surface"', False),
        ('device.model -in ["Surface"]', False),
        ('device.trustType -ne "AzureAD"', True),
        ('device.model -notStartsWith "Surface"', True),
        ('device.model -notEndsWith "Pro"', True),
        ('device.model -notContains "Surface"', True),
        ('device.model -notIn ["Surface"]', True),
    ],
)
def test_unregistered_device_positive_operators_false_negative_true(rule: str, unregistered: bool) -> None:
    assert parse_rule(rule).matches(None) is unregistered


def test_contains_is_substring_on_strings_and_whole_element_on_collections() -> None:
    assert parse_rule('device.model -contains "urfa"').matches({"model": "Surface"})
    assert not parse_rule('device.systemLabels -contains "M365"').matches({"systemlabels": ["M365Managed"]})
    assert parse_rule('device.systemLabels -contains "m365managed"').matches(
        {"systemlabels": ["M365Managed"]}
    )


def test_comparisons_ignore_case_and_booleans_compare_as_text() -> None:
    assert parse_rule('device.operatingSystem -eq "WINDOWS"').matches({"operatingsystem": "Windows"})
    assert parse_rule("device.isCompliant -eq True").matches({"iscompliant": True})
    assert not parse_rule('device.isCompliant -eq "True"').matches({"iscompliant": False})


def test_not_and_precedence() -> None:
    rule = parse_rule('-not (device.model -eq "a") -and device.model -eq "b" -or device.model -eq "c"')
    assert rule.matches({"model": "b"}) and rule.matches({"model": "c"}) and not rule.matches({"model": "a"})


def test_backtick_escapes_a_quote() -> None:
    assert parse_rule('device.displayName -eq "say `"hi`""').matches({"displayname": 'say "hi"'})


@pytest.mark.parametrize(
    ("rule", "position", "words"),
    [
        ("", 1, "empty"),
        ("device.model -eq", 17, "quoted value"),
        ('device.colour -eq "red"', 8, "not a supported device property"),
        ('user.department -eq "x"', 1, "not a device property"),
        ('device.model -like "x"', 14, "not a supported operator"),
        ('device.isCompliant -contains "x"', 20, "not supported for device.isCompliant"),
        ('device.physicalIds -eq "x"', 20, "not supported for device.physicalIds"),
        ('(device.model -eq "x"', 22, "Expected ')'"),
        ('device.model -eq "x" device.model -eq "y"', 22, "expected -and, -or"),
        ('device.model -eq "x', 18, "Unterminated"),
        ('device.model -in "x"', 18, "Expected '['"),
        ('device.model -in ["x" "y"]', 23, "Expected ',' or ']'"),
        ('device.isCompliant -eq "maybe"', 24, "True or False"),
        ('device.model -eq "x" -and', 26, "Expected a device property"),
        ("device.model -eq 'x' ; drop", 22, "Unexpected character"),
    ],
)
def test_bad_rules_name_the_position(rule: str, position: int, words: str) -> None:
    with pytest.raises(DeviceFilterError) as info:
        parse_rule(rule)
    assert info.value.position == position
    assert words in info.value.message


def test_rules_longer_than_3072_characters_are_refused() -> None:
    rule = " -or ".join(['device.model -eq "x"'] * 200)
    assert len(rule) > MAX_RULE_LENGTH
    with pytest.raises(DeviceFilterError, match="longer than 3072"):
        parse_rule(rule)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(DeviceFilterError, match="nests deeper"):
        parse_rule("(" * 500 + 'device.model -eq "x"' + ")" * 500)


TOKENS = st.sampled_from(
    [
        "device.model",
        "device.trustType",
        "device.systemLabels",
        "device.isCompliant",
        "device.foo",
        "-eq",
        "-ne",
        "-in",
        "-notIn",
        "-contains",
        "-startsWith",
        "-and",
        "-or",
        "-not",
        "and",
        "(",
        ")",
        "[",
        "]",
        ",",
        '"x"',
        "'y'",
        "True",
        '"',
        "`",
        "-",
        "device.",
        "user.x",
        "\u00e9",
    ]
)
RULES = st.one_of(st.text(max_size=80), st.lists(TOKENS, max_size=14).map(" ".join))


@settings(max_examples=400, deadline=None)
@given(RULES)
def test_parser_either_parses_or_raises_a_positioned_error(rule: str) -> None:
    try:
        parsed = parse_rule(rule)
    except DeviceFilterError as exc:
        assert 1 <= exc.position <= len(rule) + 1
        return
    parsed.matches(None)
    parsed.matches({"model": "x", "systemlabels": ["x"], "iscompliant": True})


@pytest.fixture(scope="module")
def policy_writer(server: TestServer) -> TenantHandle:
    return server.tenant("Policy.ReadWrite.ConditionalAccess")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(RULES)
def test_any_rule_through_graph_is_created_or_a_graph_400(policy_writer: TenantHandle, rule: str) -> None:
    body = {
        "displayName": "device filter fuzz",
        "state": "disabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "devices": {"deviceFilter": {"mode": "include", "rule": rule}},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    with policy_writer.client() as c:
        r = c.post("/v1.0/identity/conditionalAccess/policies", json=body)
        if r.status_code == 201:
            assert c.delete(f"/v1.0/identity/conditionalAccess/policies/{r.json()['id']}").status_code == 204
            return
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert "position" in error["message"] or "NUL" in error["message"]


def test_bad_rule_through_graph_names_the_position_and_writes_nothing(policy_writer: TenantHandle) -> None:
    body = {
        "displayName": "bad filter",
        "state": "enabled",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "devices": {"deviceFilter": {"mode": "exclude", "rule": 'device.trustType -eq "AzureAD" -and'}},
        },
        "grantControls": {"operator": "OR", "builtInControls": ["block"]},
    }
    with policy_writer.client() as c:
        r = c.post("/v1.0/identity/conditionalAccess/policies", json=body)
        listed = c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]
    assert r.status_code == 400
    assert "at position 36" in r.json()["error"]["message"]
    assert [p for p in listed if p["displayName"] == "bad filter"] == []
