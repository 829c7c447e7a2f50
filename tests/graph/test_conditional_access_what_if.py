"""What-If (POST /v1.0/identity/conditionalAccess/evaluate), table-driven: every case names the documented
conditional access rule it checks (Microsoft Entra docs, concept-conditional-access-* pages, and the Graph
evaluate / whatIfAnalysisResult reference), creates its policies, asks What-If, checks each policy's
``policyApplies`` / ``analysisReasons`` and, where the rule is about the combined decision, the decision."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.graph.test_users_and_groups import make_group, make_user
from tests.support.server import TenantHandle, TestServer

BASE = "/v1.0/identity/conditionalAccess"
SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"
OTHER_APP = "6f1c8a52-3c1e-4b67-9d41-0d2b6b5f7a10"
SERVICE_PRINCIPAL = "c65b94a5-0049-439a-a6fd-bce307077730"
PARTNER_TENANT = "3e1b0f6c-8f49-4a39-9a1e-2b1d6c8e4f21"
OTHER_TENANT = "9a7d2c41-5b8e-4f03-8c6a-1e4d7b2f9c30"


def P(**overrides: Any) -> dict[str, Any]:
    """A policy: all users, all resources, require MFA, enabled; ``overrides`` replace conditions (by key),
    ``grant`` / ``session`` / ``state`` replace the rest."""
    conditions: dict[str, Any] = {
        "users": {"includeUsers": ["All"]},
        "applications": {"includeApplications": ["All"]},
    }
    grant = overrides.pop("grant", {"operator": "OR", "builtInControls": ["mfa"]})
    session = overrides.pop("session", None)
    state = overrides.pop("state", "enabled")
    conditions.update(overrides)
    policy: dict[str, Any] = {"displayName": "case policy", "state": state, "conditions": conditions}
    if grant is not None:
        policy["grantControls"] = grant
    if session is not None:
        policy["sessionControls"] = session
    return policy


def S(
    user: str | None = "$alice",
    *,
    app: str = SHAREPOINT,
    context: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    **conditions: Any,
) -> dict[str, Any]:
    """A What-If request: ``user`` signs in to ``app`` with ``conditions`` (signInConditions)."""
    return {
        "signInIdentity": identity or {"@odata.type": "#microsoft.graph.userSignIn", "userId": user},
        "signInContext": context
        or {"@odata.type": "#microsoft.graph.applicationContext", "includeApplications": [app]},
        "signInConditions": conditions,
    }


GUEST_B2B = {
    "@odata.type": "#microsoft.graph.userSignIn",
    "externalUserType": "b2bCollaborationGuest",
    "externalTenantId": PARTNER_TENANT,
}


@dataclass
class Case:
    name: str
    rule: str  # the documented rule the case checks
    policies: list[dict[str, Any]]
    request: dict[str, Any]
    expect: list[tuple[bool, str]]  # per policy: (policyApplies, analysisReasons)
    outcome: str | None = None  # the combined decision, when the rule is about it
    required: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


USERS = "concept-conditional-access-users-groups"
APPS = "concept-conditional-access-cloud-apps"
CONDS = "concept-conditional-access-conditions"
NETWORK = "concept-assignment-network"
FILTERS = "concept-condition-filters-for-devices"
POLICIES = "concept-conditional-access-policies"
GRANT = "concept-conditional-access-grant"
REPORT = "concept-conditional-access-report-only"
EVALUATE = "graph: conditionalAccessRoot-evaluate / whatIfAnalysisResult"
SESSION = "concept-conditional-access-session"

LEGACY = ["exchangeActiveSync", "other"]
GUEST_TYPES_ALL = {
    "guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest,b2bCollaborationMember,"
    "b2bDirectConnectUser,otherExternalUser,serviceProvider"
}

CASES = [
    # ---- users and groups
    Case(
        "all-users-includes-member",
        f"{USERS}: 'All users' includes every user of the directory",
        [P()],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "include-user-by-id",
        f"{USERS}: users selected by id are in scope",
        [P(users={"includeUsers": ["$alice"]})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "include-user-other-user-out-of-scope",
        f"{USERS}: only the selected users are in scope",
        [P(users={"includeUsers": ["$alice"]})],
        S("$bob"),
        [(False, "users")],
    ),
    Case(
        "include-none-targets-nobody",
        f"{USERS}: 'None' selects no user",
        [
            P(
                users={"includeUsers": ["None"], "includeGroups": []},
                clientApplications={"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
            )
        ],
        S(),
        [(False, "users")],
    ),
    Case(
        "include-group-direct-member",
        f"{USERS}: a group includes its members",
        [P(users={"includeGroups": ["$finance"]})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "include-group-nested-member",
        f"{USERS}: groups are applied to nested members (transitively)",
        [P(users={"includeGroups": ["$staff"]})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "include-group-non-member",
        f"{USERS}: a user outside the group is out of scope",
        [P(users={"includeGroups": ["$finance"]})],
        S("$bob"),
        [(False, "users")],
    ),
    Case(
        "exclude-user-beats-all-users",
        f"{USERS}: 'The exclude action overrides the include action'",
        [P(users={"includeUsers": ["All"], "excludeUsers": ["$alice"]})],
        S(),
        [(False, "users")],
    ),
    Case(
        "exclude-group-beats-include-user",
        f"{USERS}: excluding a group overrides including its member by id",
        [P(users={"includeUsers": ["$alice"], "excludeGroups": ["$finance"]})],
        S(),
        [(False, "users")],
    ),
    Case(
        "exclude-nested-group-beats-include",
        f"{USERS}: exclusions apply to nested members too",
        [P(users={"includeUsers": ["All"], "excludeGroups": ["$staff"]})],
        S(),
        [(False, "users")],
    ),
    Case(
        "exclude-break-glass-others-in-scope",
        f"{USERS}: exclude emergency-access accounts, everyone else stays in scope",
        [P(users={"includeUsers": ["All"], "excludeUsers": ["$breakglass"]})],
        S("$bob"),
        [(True, "notSet")],
    ),
    Case(
        "guests-include-guest",
        f"{USERS}: 'GuestsOrExternalUsers' includes guest accounts",
        [P(users={"includeUsers": ["GuestsOrExternalUsers"]})],
        S("$guest"),
        [(True, "notSet")],
    ),
    Case(
        "guests-include-not-member",
        f"{USERS}: 'GuestsOrExternalUsers' leaves members out",
        [P(users={"includeUsers": ["GuestsOrExternalUsers"]})],
        S(),
        [(False, "users")],
    ),
    Case(
        "guest-types-b2b-guest",
        f"{USERS}: guest or external user types select B2B collaboration guests",
        [
            P(
                users={
                    "includeGuestsOrExternalUsers": {
                        "guestOrExternalUserTypes": "b2bCollaborationGuest",
                        "externalTenants": {
                            "@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants",
                            "membershipKind": "all",
                        },
                    }
                }
            )
        ],
        S(identity=GUEST_B2B),
        [(True, "notSet")],
    ),
    Case(
        "guest-types-internal-only",
        f"{USERS}: a policy for internal guests leaves B2B guests out",
        [P(users={"includeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "internalGuest"}})],
        S(identity=GUEST_B2B),
        [(False, "users")],
    ),
    Case(
        "external-tenant-enumerated-listed",
        f"{USERS}: external users from the listed tenants are in scope",
        [
            P(
                users={
                    "includeGuestsOrExternalUsers": {
                        "guestOrExternalUserTypes": "b2bCollaborationGuest",
                        "externalTenants": {
                            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
                            "membershipKind": "enumerated",
                            "members": [PARTNER_TENANT],
                        },
                    }
                }
            )
        ],
        S(identity=GUEST_B2B),
        [(True, "notSet")],
    ),
    Case(
        "external-tenant-enumerated-unlisted",
        f"{USERS}: external users from other tenants are out of scope",
        [
            P(
                users={
                    "includeGuestsOrExternalUsers": {
                        "guestOrExternalUserTypes": "b2bCollaborationGuest",
                        "externalTenants": {
                            "@odata.type": "#microsoft.graph.conditionalAccessEnumeratedExternalTenants",
                            "membershipKind": "enumerated",
                            "members": [OTHER_TENANT],
                        },
                    }
                }
            )
        ],
        S(identity=GUEST_B2B),
        [(False, "users")],
    ),
    Case(
        "exclude-guests-from-all-users",
        f"{USERS}: all users except guests excludes a guest",
        [P(users={"includeUsers": ["All"], "excludeGuestsOrExternalUsers": GUEST_TYPES_ALL})],
        S("$guest"),
        [(False, "users")],
    ),
    # ---- target resources
    Case(
        "all-resources-any-app",
        f"{APPS}: 'All resources' covers every application",
        [P()],
        S(app=OTHER_APP),
        [(True, "notSet")],
    ),
    Case(
        "selected-app-applies",
        f"{APPS}: a selected application is in scope",
        [P(applications={"includeApplications": [SHAREPOINT]})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "selected-app-other-app",
        f"{APPS}: other applications are out of scope",
        [P(applications={"includeApplications": [SHAREPOINT]})],
        S(app=OTHER_APP),
        [(False, "application")],
    ),
    Case(
        "excluded-app-beats-all",
        f"{APPS}: an excluded application overrides 'All resources'",
        [P(applications={"includeApplications": ["All"], "excludeApplications": [OTHER_APP]})],
        S(app=OTHER_APP),
        [(False, "application")],
    ),
    Case(
        "none-apps-targets-nothing",
        f"{APPS}: 'None' targets no application",
        [P(applications={"includeApplications": ["None"]})],
        S(),
        [(False, "application")],
    ),
    Case(
        "user-action-register-security-info",
        f"{APPS}: user action 'Register security information' is targeted by its urn",
        [P(applications={"includeUserActions": ["urn:user:registersecurityinfo"]})],
        S(
            context={
                "@odata.type": "#microsoft.graph.userActionContext",
                "userAction": "registerSecurityInformation",
            }
        ),
        [(True, "notSet")],
    ),
    Case(
        "user-action-not-app-sign-in",
        f"{APPS}: a user-action policy does not apply to an application sign-in",
        [P(applications={"includeUserActions": ["urn:user:registersecurityinfo"]})],
        S(),
        [(False, "userActions")],
    ),
    Case(
        "all-apps-not-user-action",
        f"{APPS}: 'All resources' does not cover user actions",
        [P()],
        S(
            context={
                "@odata.type": "#microsoft.graph.userActionContext",
                "userAction": "registerOrJoinDevices",
            }
        ),
        [(False, "application")],
    ),
    Case(
        "auth-context-match",
        f"{APPS}: an authentication context policy applies when the app requests that context",
        [P(applications={"includeAuthenticationContextClassReferences": ["c1", "c37"]})],
        S(context={"@odata.type": "#microsoft.graph.authContext", "authenticationContextValue": "c37"}),
        [(True, "notSet")],
    ),
    Case(
        "auth-context-other",
        f"{APPS}: other authentication contexts are out of scope",
        [P(applications={"includeAuthenticationContextClassReferences": ["c1"]})],
        S(context={"@odata.type": "#microsoft.graph.authContext", "authenticationContextValue": "c2"}),
        [(False, "authenticationContext")],
    ),
    # ---- device platforms
    Case(
        "platform-included",
        f"{CONDS}: device platforms: an included platform is in scope",
        [P(platforms={"includePlatforms": ["android"]})],
        S(devicePlatform="android"),
        [(True, "notSet")],
    ),
    Case(
        "platform-not-included",
        f"{CONDS}: device platforms: other platforms are out of scope",
        [P(platforms={"includePlatforms": ["android"]})],
        S(devicePlatform="iOS"),
        [(False, "devicePlatform")],
    ),
    Case(
        "platform-excluded-beats-all",
        f"{CONDS}: device platforms: an excluded platform overrides 'Any device'",
        [P(platforms={"includePlatforms": ["all"], "excludePlatforms": ["iOS"]})],
        S(devicePlatform="iOS"),
        [(False, "devicePlatform")],
    ),
    Case(
        "platform-unknown-matches-any-minus-known",
        f"{CONDS}: block unknown platforms: include any device, exclude the known ones",
        [
            P(
                platforms={
                    "includePlatforms": ["all"],
                    "excludePlatforms": ["android", "iOS", "windows", "macOS", "linux", "windowsPhone"],
                }
            )
        ],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "platform-unknown-not-specific",
        f"{CONDS}: device platforms: an unknown platform is not a selected one",
        [P(platforms={"includePlatforms": ["windows"]})],
        S(),
        [(False, "devicePlatform")],
    ),
    Case(
        "platform-not-configured",
        f"{CONDS}: an unconfigured condition applies to every platform",
        [P()],
        S(devicePlatform="linux"),
        [(True, "notSet")],
    ),
    # ---- network / locations
    Case(
        "any-location",
        f"{NETWORK}: policies apply to all locations by default ('Any location')",
        [P(locations={"includeLocations": ["All"]})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "all-trusted-from-trusted-ip",
        f"{NETWORK}: 'All trusted networks' covers locations marked trusted",
        [P(locations={"includeLocations": ["AllTrusted"]})],
        S(ipAddress="203.0.113.10"),
        [(True, "notSet")],
    ),
    Case(
        "all-trusted-from-untrusted-ip",
        f"{NETWORK}: untrusted addresses are not 'All trusted networks'",
        [P(locations={"includeLocations": ["AllTrusted"]})],
        S(ipAddress="198.51.100.7"),
        [(False, "location")],
    ),
    Case(
        "exclude-trusted-from-trusted-ip",
        f"{NETWORK}: require MFA outside trusted networks: a trusted address is excluded",
        [P(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})],
        S(ipAddress="203.0.113.10"),
        [(False, "location")],
    ),
    Case(
        "exclude-trusted-from-internet",
        f"{NETWORK}: require MFA outside trusted networks: other addresses are in scope",
        [P(locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})],
        S(ipAddress="192.0.2.55"),
        [(True, "notSet")],
    ),
    Case(
        "ip-location-inside",
        f"{NETWORK}: an IP named location contains the addresses of its CIDR ranges",
        [P(locations={"includeLocations": ["$branch"]})],
        S(ipAddress="198.51.100.200"),
        [(True, "notSet")],
    ),
    Case(
        "ip-location-outside",
        f"{NETWORK}: addresses outside the ranges are not in the location",
        [P(locations={"includeLocations": ["$branch"]})],
        S(ipAddress="198.51.101.1"),
        [(False, "location")],
    ),
    Case(
        "ipv6-location",
        f"{NETWORK}: IPv6 CIDR ranges are matched too",
        [P(locations={"includeLocations": ["$branch"]})],
        S(ipAddress="2001:db8:0:1::42"),
        [(True, "notSet")],
    ),
    Case(
        "country-location-match",
        f"{NETWORK}: a countries location contains sign-ins from its countries",
        [
            P(
                locations={"includeLocations": ["$blocked_countries"]},
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(country="KP"),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "country-location-other",
        f"{NETWORK}: other countries are not in the location",
        [P(locations={"includeLocations": ["$blocked_countries"]})],
        S(country="US"),
        [(False, "location")],
    ),
    Case(
        "country-unknown-included",
        f"{NETWORK}: 'Include unknown countries/regions' covers addresses with no country",
        [P(locations={"includeLocations": ["$unknown_countries"]})],
        S(ipAddress="192.0.2.1"),
        [(True, "notSet")],
    ),
    Case(
        "excluded-named-location",
        f"{NETWORK}: an excluded location overrides 'Any location'",
        [P(locations={"includeLocations": ["All"], "excludeLocations": ["$branch"]})],
        S(ipAddress="198.51.100.1"),
        [(False, "location")],
    ),
    # ---- client apps
    Case(
        "client-apps-default-all",
        f"{CONDS}: without the client apps condition a policy applies to all client app types",
        [P()],
        S(clientAppType="exchangeActiveSync"),
        [(True, "notSet")],
    ),
    Case(
        "legacy-not-browser",
        f"{CONDS}: a legacy-authentication policy does not apply to browsers",
        [P(clientAppTypes=LEGACY, grant={"operator": "OR", "builtInControls": ["block"]})],
        S(clientAppType="browser"),
        [(False, "clientApps")],
        "grant",
        [],
    ),
    Case(
        "legacy-exchange-active-sync",
        f"{CONDS}: block legacy authentication: Exchange ActiveSync clients",
        [P(clientAppTypes=LEGACY, grant={"operator": "OR", "builtInControls": ["block"]})],
        S(clientAppType="exchangeActiveSync"),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "legacy-other-clients",
        f"{CONDS}: block legacy authentication: other clients",
        [P(clientAppTypes=LEGACY, grant={"operator": "OR", "builtInControls": ["block"]})],
        S(clientAppType="other"),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "eas-supported-matches-eas",
        f"{CONDS}: 'easSupported' selects Exchange ActiveSync clients",
        [P(clientAppTypes=["easSupported"])],
        S(clientAppType="exchangeActiveSync"),
        [(True, "notSet")],
    ),
    Case(
        "modern-clients-not-browser",
        f"{CONDS}: 'Mobile apps and desktop clients' leaves browsers out",
        [P(clientAppTypes=["mobileAppsAndDesktopClients"])],
        S(clientAppType="browser"),
        [(False, "clientApps")],
    ),
    # ---- risk and other conditions
    Case(
        "sign-in-risk-medium",
        f"{CONDS}: sign-in risk: a selected level is in scope",
        [P(signInRiskLevels=["high", "medium"])],
        S(signInRiskLevel="medium"),
        [(True, "notSet")],
    ),
    Case(
        "sign-in-risk-low",
        f"{CONDS}: sign-in risk: other levels are out of scope",
        [P(signInRiskLevels=["high", "medium"])],
        S(signInRiskLevel="low"),
        [(False, "signInRisk")],
    ),
    Case(
        "sign-in-risk-none",
        f"{CONDS}: sign-in risk: no risk is not a selected level",
        [P(signInRiskLevels=["high"])],
        S(),
        [(False, "signInRisk")],
    ),
    Case(
        "user-risk-high",
        f"{CONDS}: user risk: a selected level is in scope",
        [P(userRiskLevels=["high"], grant={"operator": "OR", "builtInControls": ["block"]})],
        S(userRiskLevel="high"),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "user-risk-medium",
        f"{CONDS}: user risk: other levels are out of scope",
        [P(userRiskLevels=["high"])],
        S(userRiskLevel="medium"),
        [(False, "userRisk")],
    ),
    Case(
        "insider-risk-elevated",
        f"{CONDS}: insider risk: a selected level is in scope",
        [P(insiderRiskLevels="elevated")],
        S(insiderRiskLevel="elevated"),
        [(True, "notSet")],
    ),
    Case(
        "insider-risk-minor",
        f"{CONDS}: insider risk: other levels are out of scope",
        [P(insiderRiskLevels="elevated")],
        S(insiderRiskLevel="minor"),
        [(False, "insiderRisk")],
    ),
    Case(
        "device-code-flow",
        f"{CONDS}: authentication flows: device code flow is in scope",
        [P(authenticationFlows={"transferMethods": "deviceCodeFlow"})],
        S(authenticationFlow={"transferMethod": "deviceCodeFlow"}),
        [(True, "notSet")],
    ),
    Case(
        "authentication-transfer-not-device-code",
        f"{CONDS}: authentication flows: other flows are out of scope",
        [P(authenticationFlows={"transferMethods": "deviceCodeFlow"})],
        S(authenticationFlow={"transferMethod": "authenticationTransfer"}),
        [(False, "authenticationFlow")],
    ),
    # ---- filter for devices
    Case(
        "filter-positive-unregistered",
        f"{FILTERS}: positive operators do not apply to an unregistered device",
        [P(devices={"deviceFilter": {"mode": "include", "rule": 'device.trustType -eq "AzureAD"'}})],
        S(),
        [(False, "devices")],
    ),
    Case(
        "filter-negative-unregistered",
        f"{FILTERS}: negative operators apply to an unregistered device (properties are null)",
        [P(devices={"deviceFilter": {"mode": "include", "rule": 'device.extensionAttribute1 -ne "SAW"'}})],
        S(),
        [(True, "notSet")],
    ),
    Case(
        "filter-exclude-saw",
        f"{FILTERS}: exclude filtered devices: a privileged-access workstation is excluded",
        [
            P(
                devices={"deviceFilter": {"mode": "exclude", "rule": 'device.extensionAttribute1 -eq "SAW"'}},
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(deviceInfo={"extensionAttribute1": "SAW", "isCompliant": True}),
        [(False, "devices")],
        "grant",
        [],
    ),
    Case(
        "filter-exclude-other-device",
        f"{FILTERS}: exclude filtered devices: other devices stay in scope",
        [
            P(
                devices={"deviceFilter": {"mode": "exclude", "rule": 'device.extensionAttribute1 -eq "SAW"'}},
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(deviceInfo={"extensionAttribute1": "Kiosk"}),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "filter-in-list-ignores-case",
        f"{FILTERS}: -in matches any listed value; comparisons ignore case",
        [
            P(
                devices={
                    "deviceFilter": {
                        "mode": "include",
                        "rule": 'device.operatingSystemVersion -in ["10.0.19041", "10.0.22000"] '
                        '-and device.operatingSystem -eq "windows"',
                    }
                }
            )
        ],
        S(deviceInfo={"operatingSystem": "Windows", "operatingSystemVersion": "10.0.22000"}),
        [(True, "notSet")],
    ),
    Case(
        "filter-collection-contains-whole-element",
        f"{FILTERS}: -contains on a collection matches a whole element",
        [P(devices={"deviceFilter": {"mode": "include", "rule": 'device.systemLabels -contains "M365"'}})],
        S(deviceInfo={"systemLabels": ["M365Managed"]}),
        [(False, "devices")],
    ),
    Case(
        "filter-string-contains-substring",
        f"{FILTERS}: -contains on a string is a substring test",
        [P(devices={"deviceFilter": {"mode": "include", "rule": 'device.model -contains "Surface"'}})],
        S(deviceInfo={"model": "Microsoft Surface Pro 9"}),
        [(True, "notSet")],
    ),
    # ---- state, combination and decision
    Case(
        "disabled-policy",
        f"{EVALUATE}: a disabled policy does not apply (policyNotEnabled)",
        [P(state="disabled")],
        S(),
        [(False, "policyNotEnabled")],
        "grant",
        [],
    ),
    Case(
        "report-only-evaluated-not-enforced",
        f"{REPORT}: report-only policies are evaluated but not enforced",
        [
            P(
                state="enabledForReportingButNotEnforced",
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(),
        [(True, "notSet")],
        "grant",
        [],
    ),
    Case(
        "block-wins",
        f"{POLICIES}: a policy that blocks access stops enforcement: block wins",
        [P(), P(grant={"operator": "OR", "builtInControls": ["block"]})],
        S(),
        [(True, "notSet"), (True, "notSet")],
        "block",
        [],
    ),
    Case(
        "all-applicable-policies-combine",
        f"{POLICIES}: all policies that apply must be satisfied",
        [P(), P(grant={"operator": "OR", "builtInControls": ["compliantDevice"]})],
        S(),
        [(True, "notSet"), (True, "notSet")],
        "challenge",
        ["mfa", "compliantDevice"],
    ),
    Case(
        "prompt-order",
        f"{POLICIES}: unmet controls are prompted in order: MFA, compliant device, hybrid join, …",
        [P(grant={"operator": "AND", "builtInControls": ["domainJoinedDevice", "compliantDevice", "mfa"]})],
        S(),
        [(True, "notSet")],
        "challenge",
        ["mfa", "compliantDevice", "domainJoinedDevice"],
    ),
    Case(
        "require-one-of-met",
        f"{GRANT}: 'Require one of the selected controls' is met by any one of them",
        [P(grant={"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]})],
        S(deviceInfo={"isCompliant": True}),
        [(True, "notSet")],
        "grant",
        [],
    ),
    Case(
        "require-all-partly-met",
        f"{GRANT}: 'Require all the selected controls' needs each of them",
        [P(grant={"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]})],
        S(deviceInfo={"isCompliant": True}),
        [(True, "notSet")],
        "challenge",
        ["mfa"],
    ),
    Case(
        "hybrid-joined-device",
        f"{GRANT}: a Microsoft Entra hybrid joined device (trustType ServerAD) satisfies 'hybrid joined'",
        [P(grant={"operator": "OR", "builtInControls": ["domainJoinedDevice"]})],
        S(deviceInfo={"trustType": "ServerAD"}),
        [(True, "notSet")],
        "grant",
        [],
    ),
    Case(
        "password-change-for-high-user-risk",
        f"{GRANT}: password change is combined with MFA for high user risk",
        [P(userRiskLevels=["high"], grant={"operator": "AND", "builtInControls": ["mfa", "passwordChange"]})],
        S(userRiskLevel="high"),
        [(True, "notSet")],
        "challenge",
        ["mfa", "passwordChange"],
    ),
    Case(
        "all-assignments-anded",
        f"{POLICIES}: all assignments are ANDed; What-If names every unmet one",
        [
            P(
                users={"includeUsers": ["$alice"]},
                platforms={"includePlatforms": ["android"]},
                signInRiskLevels=["high"],
            )
        ],
        S("$bob", devicePlatform="iOS"),
        [(False, "users,devicePlatform,signInRisk")],
    ),
    Case(
        "applied-policies-only",
        f"{EVALUATE}: appliedPoliciesOnly leaves out the policies that do not apply",
        [P(users={"includeUsers": ["$bob"]}), P()],
        {**S(), "appliedPoliciesOnly": True},
        [(True, "notSet")],
        extra={"only_second": True},
    ),
    Case(
        "workload-identity-in-scope",
        f"{EVALUATE}: a policy for service principals in my tenant applies to a service principal",
        [
            P(
                users={"includeUsers": ["None"]},
                clientApplications={"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(
            identity={
                "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                "servicePrincipalId": SERVICE_PRINCIPAL,
            }
        ),
        [(True, "notSet")],
        "block",
        [],
    ),
    Case(
        "user-policy-not-workload",
        f"{EVALUATE}: a policy for users does not apply to a service principal",
        [P()],
        S(
            identity={
                "@odata.type": "#microsoft.graph.servicePrincipalSignIn",
                "servicePrincipalId": SERVICE_PRINCIPAL,
            }
        ),
        [(False, "workloadIdentities")],
    ),
    Case(
        "workload-policy-not-user",
        f"{EVALUATE}: a policy for service principals does not apply to users",
        [
            P(
                users={"includeUsers": ["None"]},
                clientApplications={"includeServicePrincipals": ["ServicePrincipalsInMyTenant"]},
                grant={"operator": "OR", "builtInControls": ["block"]},
            )
        ],
        S(),
        [(False, "users")],
        "grant",
        [],
    ),
    Case(
        "sign-in-frequency-strictest",
        f"{SESSION}: with several sign-in frequencies the shortest applies",
        [
            P(grant=None, session={"signInFrequency": {"isEnabled": True, "type": "days", "value": 7}}),
            P(grant=None, session={"signInFrequency": {"isEnabled": True, "type": "hours", "value": 4}}),
        ],
        S(),
        [(True, "notSet"), (True, "notSet")],
        "grant",
        [],
        extra={"frequency": {"type": "hours", "value": 4}},
    ),
]


@pytest.fixture(scope="module")
def directory(server: TestServer) -> Iterator[tuple[TenantHandle, dict[str, str]]]:
    tenant = server.tenant("Directory.ReadWrite.All", "Policy.ReadWrite.ConditionalAccess")
    ids: dict[str, str] = {}
    with tenant.client() as c:

        def user(alias: str, **extra: Any) -> str:
            return str(make_user(c, tenant.domain, alias, **extra)["id"])

        def group(name: str) -> str:
            return str(make_group(c, name)["id"])

        def add(group_id: str, member_id: str) -> None:
            r = c.post(
                f"/v1.0/groups/{group_id}/members/$ref",
                json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{member_id}"},
            )
            assert r.status_code == 204, r.text

        def location(body: dict[str, Any]) -> str:
            r = c.post(f"{BASE}/namedLocations", json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        ids["alice"], ids["bob"], ids["breakglass"] = user("alice"), user("bob"), user("breakglass")
        ids["guest"] = user("guest", userType="Guest")
        ids["finance"], ids["staff"] = group("Finance"), group("All Staff")
        add(ids["finance"], ids["alice"])
        add(ids["staff"], ids["finance"])
        ids["hq"] = location(
            {
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": "HQ",
                "isTrusted": True,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}
                ],
            }
        )
        ids["branch"] = location(
            {
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": "Branch",
                "isTrusted": False,
                "ipRanges": [
                    {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "198.51.100.0/24"},
                    {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8:0:1::/64"},
                ],
            }
        )
        ids["blocked_countries"] = location(
            {
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "Blocked countries",
                "countriesAndRegions": ["KP", "IR"],
            }
        )
        ids["unknown_countries"] = location(
            {
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "Unknown",
                "countriesAndRegions": [],
                "includeUnknownCountriesAndRegions": True,
            }
        )
    yield tenant, ids


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return ids[value[1:]]
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def test_the_table_has_at_least_sixty_cases_each_naming_its_rule() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.rule for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_what_if(case: Case, directory: tuple[TenantHandle, dict[str, str]]) -> None:
    tenant, ids = directory
    created: list[str] = []
    with tenant.client() as c:
        try:
            for i, policy in enumerate(case.policies):
                body = fill(policy, ids) | {"displayName": f"{case.name} #{i}"}
                r = c.post(f"{BASE}/policies", json=body)
                assert r.status_code == 201, r.text
                created.append(r.json()["id"])
            r = c.post(f"{BASE}/evaluate", json=fill(case.request, ids))
            assert r.status_code == 200, r.text
            body = r.json()
        finally:
            for policy_id in created:
                assert c.delete(f"{BASE}/policies/{policy_id}").status_code == 204
    by_id = {v["id"]: v for v in body["value"]}
    if case.extra.get("only_second"):
        assert list(by_id) == [created[1]], case.rule
    else:
        got = [(by_id[pid]["policyApplies"], by_id[pid]["analysisReasons"]) for pid in created]
        assert got == case.expect, case.rule
    assert all(v["@odata.type"] if "@odata.type" in v else True for v in body["value"])
    decision = body["@trustplane.decision"]
    if case.outcome is not None:
        assert decision["outcome"] == case.outcome, case.rule
        assert decision["requiredControls"] == case.required, case.rule
    if "frequency" in case.extra:
        frequency = decision["sessionControls"]["signInFrequency"]
        assert {k: frequency[k] for k in ("type", "value")} == case.extra["frequency"], case.rule
