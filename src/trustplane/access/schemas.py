"""Graph's wire shapes for conditional access, checked the way Graph checks them: every complex type's
properties by name (an unknown or mistyped property is refused by name), every enum value, the rules that tie
conditions and controls together, and device-filter rules (errors name the position). ``normalize_*`` returns
the canonical JSON that is stored and rendered: every property present, unset collections as ``[]``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from trustplane.access.device_filter import DeviceFilterError, parse_rule
from trustplane.core.errors import BadRequest
from trustplane.core.ids import is_uuid

POLICY_STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")
CLIENT_APP_TYPES = (
    "all",
    "browser",
    "mobileAppsAndDesktopClients",
    "exchangeActiveSync",
    "easSupported",
    "other",
    "unknownFutureValue",
)
PLATFORMS = ("android", "iOS", "windows", "windowsPhone", "macOS", "all", "unknownFutureValue", "linux")
RISK_LEVELS = ("low", "medium", "high", "hidden", "none", "unknownFutureValue")
GRANT_CONTROLS = (
    "block",
    "mfa",
    "compliantDevice",
    "domainJoinedDevice",
    "approvedApplication",
    "compliantApplication",
    "passwordChange",
    "unknownFutureValue",
    "riskRemediation",
)
GUEST_TYPES = (
    "none",
    "internalGuest",
    "b2bCollaborationGuest",
    "b2bCollaborationMember",
    "b2bDirectConnectUser",
    "otherExternalUser",
    "serviceProvider",
    "unknownFutureValue",
)
INSIDER_RISK_LEVELS = ("minor", "moderate", "elevated", "unknownFutureValue")
TRANSFER_METHODS = ("none", "deviceCodeFlow", "authenticationTransfer", "unknownFutureValue")
USER_ACTIONS = ("urn:user:registersecurityinfo", "urn:user:registerdevice")
SPECIAL_USERS = ("All", "None", "GuestsOrExternalUsers")
SPECIAL_APPS = ("All", "None", "Office365", "MicrosoftAdminPortals")
SPECIAL_LOCATIONS = ("All", "AllTrusted")
# The built-in "Multifactor authentication" authentication strength, which requires what `mfa` requires.
MFA_STRENGTH_ID = "00000000-0000-0000-0000-000000000002"
AUTH_CONTEXT_RE = re.compile(r"^c([1-9]|[1-9][0-9])$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
MAX_IP_RANGES = 2000
MAX_NAMED_LOCATIONS = 195

# Type tables: property -> kind. Kinds: "str", "bool", "int", ("enum", values), ("enums", values) for a
# collection of enum members, "strs" for a collection of strings, ("flags", values) for a flags enum string,
# ("type", name) for a nested complex type. "@odata.type" is accepted everywhere.
T = dict[str, Any]
TYPES: dict[str, T] = {
    "conditionalAccessConditionSet": {
        "applications": ("type", "conditionalAccessApplications"),
        "users": ("type", "conditionalAccessUsers"),
        "clientApplications": ("type", "conditionalAccessClientApplications"),
        "clientAppTypes": ("enums", CLIENT_APP_TYPES),
        "platforms": ("type", "conditionalAccessPlatforms"),
        "locations": ("type", "conditionalAccessLocations"),
        "devices": ("type", "conditionalAccessDevices"),
        "signInRiskLevels": ("enums", RISK_LEVELS),
        "userRiskLevels": ("enums", RISK_LEVELS),
        "servicePrincipalRiskLevels": ("enums", RISK_LEVELS),
        "insiderRiskLevels": ("flags", INSIDER_RISK_LEVELS),
        "authenticationFlows": ("type", "conditionalAccessAuthenticationFlows"),
    },
    "conditionalAccessUsers": {
        "includeUsers": "strs",
        "excludeUsers": "strs",
        "includeGroups": "strs",
        "excludeGroups": "strs",
        "includeRoles": "strs",
        "excludeRoles": "strs",
        "includeGuestsOrExternalUsers": ("type", "conditionalAccessGuestsOrExternalUsers"),
        "excludeGuestsOrExternalUsers": ("type", "conditionalAccessGuestsOrExternalUsers"),
    },
    "conditionalAccessGuestsOrExternalUsers": {
        "guestOrExternalUserTypes": ("flags", GUEST_TYPES),
        "externalTenants": ("type", "conditionalAccessExternalTenants"),
    },
    "conditionalAccessExternalTenants": {
        "membershipKind": ("enum", ("all", "enumerated", "unknownFutureValue")),
        "members": "strs",
    },
    "conditionalAccessApplications": {
        "includeApplications": "strs",
        "excludeApplications": "strs",
        "includeUserActions": "strs",
        "includeAuthenticationContextClassReferences": "strs",
        "applicationFilter": ("type", "conditionalAccessFilter"),
    },
    "conditionalAccessClientApplications": {
        "includeServicePrincipals": "strs",
        "excludeServicePrincipals": "strs",
        "servicePrincipalFilter": ("type", "conditionalAccessFilter"),
    },
    "conditionalAccessPlatforms": {
        "includePlatforms": ("enums", PLATFORMS),
        "excludePlatforms": ("enums", PLATFORMS),
    },
    "conditionalAccessLocations": {"includeLocations": "strs", "excludeLocations": "strs"},
    "conditionalAccessDevices": {"deviceFilter": ("type", "conditionalAccessFilter")},
    "conditionalAccessFilter": {"mode": ("enum", ("include", "exclude")), "rule": "str"},
    "conditionalAccessAuthenticationFlows": {"transferMethods": ("flags", TRANSFER_METHODS)},
    "conditionalAccessGrantControls": {
        "operator": ("enum", ("AND", "OR")),
        "builtInControls": ("enums", GRANT_CONTROLS),
        "customAuthenticationFactors": "strs",
        "termsOfUse": "strs",
        "authenticationStrength": ("type", "authenticationStrengthPolicy"),
    },
    "authenticationStrengthPolicy": {"id": "str", "displayName": "str"},
    "conditionalAccessSessionControls": {
        "applicationEnforcedRestrictions": ("type", "applicationEnforcedRestrictionsSessionControl"),
        "cloudAppSecurity": ("type", "cloudAppSecuritySessionControl"),
        "disableResilienceDefaults": "bool",
        "persistentBrowser": ("type", "persistentBrowserSessionControl"),
        "signInFrequency": ("type", "signInFrequencySessionControl"),
        "secureSignInSession": ("type", "secureSignInSessionControl"),
    },
    "applicationEnforcedRestrictionsSessionControl": {"isEnabled": "bool"},
    "secureSignInSessionControl": {"isEnabled": "bool"},
    "cloudAppSecuritySessionControl": {
        "isEnabled": "bool",
        "cloudAppSecurityType": (
            "enum",
            ("mcasConfigured", "monitorOnly", "blockDownloads", "unknownFutureValue"),
        ),
    },
    "persistentBrowserSessionControl": {"isEnabled": "bool", "mode": ("enum", ("always", "never"))},
    "signInFrequencySessionControl": {
        "isEnabled": "bool",
        "type": ("enum", ("days", "hours")),
        "value": "int",
        "authenticationType": (
            "enum",
            ("primaryAndSecondaryAuthentication", "secondaryAuthentication", "unknownFutureValue"),
        ),
        "frequencyInterval": ("enum", ("timeBased", "everyTime", "unknownFutureValue")),
    },
}

POLICY_PROPS: T = {
    "displayName": "str",
    "description": "str",
    "state": ("enum", POLICY_STATES),
    "templateId": "str",
    "conditions": ("type", "conditionalAccessConditionSet"),
    "grantControls": ("type", "conditionalAccessGrantControls"),
    "sessionControls": ("type", "conditionalAccessSessionControls"),
}
# Read-only properties a client may send back unchanged (an exported policy re-imported); they are ignored.
READ_ONLY = frozenset({"id", "createdDateTime", "modifiedDateTime", "deletedDateTime"})


def bad(message: str) -> BadRequest:
    return BadRequest(message, code="Request_BadRequest")


def unknown_property(key: str, type_name: str) -> BadRequest:
    return bad(
        f"Property '{key}' does not exist on type 'microsoft.graph.{type_name}'. "
        "Make sure to only use property names that are defined by the type."
    )


def _check_value(type_name: str, key: str, kind: Any, value: Any, path: str) -> Any:
    where = f"{path}.{key}" if path else key
    if value is None:
        if kind in ("strs",) or (isinstance(kind, tuple) and kind[0] == "enums"):
            return []
        return None
    if kind == "str":
        if not isinstance(value, str):
            raise bad(f"Property '{where}' expects a string value, not {type(value).__name__}.")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad(f"Property '{where}' expects a boolean value (true or false).")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(f"Property '{where}' expects an integer value.")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"Property '{where}' expects a collection of strings.")
        if len(value) > 2000:
            raise bad(f"Property '{where}' has more than 2000 values.")
        return list(value)
    tag, arg = kind
    if tag == "enum":
        if value not in arg:
            raise bad(f"'{value}' is not a valid value of '{where}'. Valid values: {', '.join(arg)}.")
        return value
    if tag == "enums":
        if not isinstance(value, list):
            raise bad(f"Property '{where}' expects a collection of enum values.")
        for v in value:
            if v not in arg:
                raise bad(f"'{v}' is not a valid value of '{where}'. Valid values: {', '.join(arg)}.")
        return list(dict.fromkeys(value))
    if tag == "flags":
        if not isinstance(value, str):
            raise bad(f"Property '{where}' expects a comma-separated string of flags.")
        members = [m.strip() for m in value.split(",") if m.strip()]
        for m in members:
            if m not in arg:
                raise bad(f"'{m}' is not a valid value of '{where}'. Valid values: {', '.join(arg)}.")
        return ",".join(members) if members else None
    return check_complex(arg, value, where)


def check_complex(type_name: str, value: Any, path: str = "") -> dict[str, Any]:
    """A complex value of ``type_name``: every property present (defaults filled), unknown ones refused."""
    if not isinstance(value, dict):
        raise bad(f"Property '{path}' expects an object of type 'microsoft.graph.{type_name}'.")
    props = TYPES[type_name]
    out: dict[str, Any] = {}
    for key in value:
        if key == "@odata.type":
            continue
        if key not in props:
            raise unknown_property(key, type_name)
    for key, kind in props.items():
        out[key] = _check_value(type_name, key, kind, value.get(key), path)
    if type_name == "conditionalAccessExternalTenants":
        odata_type = value.get("@odata.type", "")
        if out["membershipKind"] is None:
            out["membershipKind"] = "enumerated" if "Enumerated" in odata_type else "all"
        out["@odata.type"] = (
            "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
            if out["membershipKind"] == "enumerated"
            else "#microsoft.graph.conditionalAccessAllExternalTenants"
        )
    return out


def _guid_or(values: list[str], special: tuple[str, ...], where: str) -> None:
    for v in values:
        if v not in special and not is_uuid(v):
            allowed = f" or one of {', '.join(special)}" if special else ""
            raise bad(f"'{v}' in '{where}' is not a valid object id (a GUID{allowed}).")


def _check_filter(filt: dict[str, Any] | None, where: str) -> None:
    if filt is None:
        return
    if filt["mode"] is None or filt["rule"] is None:
        raise bad(f"'{where}' needs both 'mode' (include or exclude) and 'rule'.")
    try:
        parse_rule(filt["rule"])
    except DeviceFilterError as exc:
        raise bad(f"Invalid rule in '{where}': {exc.message} at position {exc.position}.") from exc


def check_policy_rules(policy: dict[str, Any]) -> None:
    """The rules that tie a complete policy together (after every property was type-checked)."""
    name = policy.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise bad("The property 'displayName' is required and cannot be empty.")
    if len(name) > 256:
        raise bad("The value of 'displayName' is longer than 256 characters.")
    if policy.get("state") is None:
        raise bad("The property 'state' is required.")
    cond = policy.get("conditions")
    if cond is None:
        raise bad("The property 'conditions' is required.")
    apps, users, clients = cond["applications"], cond["users"], cond["clientApplications"]
    if apps is None:
        raise bad("The property 'conditions.applications' is required.")
    targets = [
        bool(apps["includeApplications"]),
        bool(apps["includeUserActions"]),
        bool(apps["includeAuthenticationContextClassReferences"]),
    ]
    if sum(targets) != 1:
        raise bad(
            "Exactly one of 'includeApplications', 'includeUserActions' and "
            "'includeAuthenticationContextClassReferences' must be set in 'conditions.applications'."
        )
    _guid_or(apps["includeApplications"], SPECIAL_APPS, "includeApplications")
    _guid_or(apps["excludeApplications"], ("Office365", "MicrosoftAdminPortals"), "excludeApplications")
    for action in apps["includeUserActions"]:
        if action not in USER_ACTIONS:
            raise bad(f"'{action}' is not a valid user action ({', '.join(USER_ACTIONS)}).")
    if len(apps["includeUserActions"]) > 1:
        raise bad("A policy can target only one user action.")
    for ref in apps["includeAuthenticationContextClassReferences"]:
        if not AUTH_CONTEXT_RE.match(ref):
            raise bad(f"'{ref}' is not a valid authentication context (c1 to c99).")
    if apps["applicationFilter"] is not None:
        raise bad("'applicationFilter' (custom security attributes) is not supported by this server.")
    has_users = users is not None and (
        any(u != "None" for u in users["includeUsers"])
        or bool(users["includeGroups"] or users["includeRoles"])
        or users["includeGuestsOrExternalUsers"] is not None
    )
    has_clients = clients is not None and bool(clients["includeServicePrincipals"])
    names_nobody = users is not None and users["includeUsers"] == [
        "None"
    ]  # valid: the policy applies to no one
    if not has_users and not has_clients and not names_nobody:
        raise bad(
            "Either 'conditions.users' or 'conditions.clientApplications' must include someone "
            "(or 'includeUsers' must be ['None'])."
        )
    if users is not None:
        _guid_or(users["includeUsers"], SPECIAL_USERS, "includeUsers")
        _guid_or(users["excludeUsers"], ("GuestsOrExternalUsers",), "excludeUsers")
        for key in ("includeGroups", "excludeGroups", "includeRoles", "excludeRoles"):
            _guid_or(users[key], (), key)
        for key in ("includeGuestsOrExternalUsers", "excludeGuestsOrExternalUsers"):
            guests = users[key]
            if guests is not None and not guests["guestOrExternalUserTypes"]:
                raise bad(f"'{key}' needs 'guestOrExternalUserTypes'.")
    if clients is not None:
        _guid_or(
            clients["includeServicePrincipals"], ("ServicePrincipalsInMyTenant",), "includeServicePrincipals"
        )
        _guid_or(clients["excludeServicePrincipals"], (), "excludeServicePrincipals")
        if clients["servicePrincipalFilter"] is not None:
            raise bad("'servicePrincipalFilter' is not supported by this server.")
        if has_users and has_clients:
            raise bad("A policy targets either users or workload identities (clientApplications), not both.")
    platforms = cond["platforms"]
    if platforms is not None and not platforms["includePlatforms"]:
        raise bad("'conditions.platforms' needs 'includePlatforms'.")
    locations = cond["locations"]
    if locations is not None:
        if not locations["includeLocations"]:
            raise bad("'conditions.locations' needs 'includeLocations'.")
        _guid_or(locations["includeLocations"], SPECIAL_LOCATIONS, "includeLocations")
        _guid_or(locations["excludeLocations"], ("AllTrusted",), "excludeLocations")
    if cond["devices"] is not None:
        _check_filter(cond["devices"]["deviceFilter"], "conditions.devices.deviceFilter")
    grant, session = policy.get("grantControls"), policy.get("sessionControls")
    if grant is None and session is None:
        raise bad("A policy needs 'grantControls' or 'sessionControls'.")
    if grant is not None:
        _check_grant(grant, policy)
    if session is not None:
        _check_session(session)
    if apps["includeUserActions"] and policy["state"] == "enabledForReportingButNotEnforced":
        raise bad("Policies that target user actions cannot be set to report-only.")


def _check_grant(grant: dict[str, Any], policy: dict[str, Any]) -> None:
    controls = grant["builtInControls"]
    strength = grant["authenticationStrength"]
    if not controls and not grant["termsOfUse"] and not grant["customAuthenticationFactors"] and not strength:
        raise bad("'grantControls' needs at least one control.")
    if grant["operator"] is None:
        raise bad("'grantControls.operator' is required (AND or OR).")
    if "block" in controls and (len(controls) > 1 or grant["termsOfUse"] or strength):
        raise bad("The 'block' control cannot be combined with other controls.")
    if strength is not None:
        if strength.get("id") != MFA_STRENGTH_ID:
            raise bad(
                f"Only the built-in multifactor authentication strength ({MFA_STRENGTH_ID}) is supported."
            )
        if "mfa" in controls:
            raise bad("'mfa' and 'authenticationStrength' cannot be combined.")
    if "passwordChange" in controls:
        cond = policy["conditions"]
        if grant["operator"] != "AND" or "mfa" not in controls:
            raise bad("'passwordChange' must be combined with 'mfa' using the AND operator.")
        if not cond["userRiskLevels"]:
            raise bad("'passwordChange' can only be used in a policy with 'userRiskLevels'.")
        if cond["applications"]["includeApplications"] != ["All"]:
            raise bad("'passwordChange' requires the policy to target all applications ('All').")


def _check_session(session: dict[str, Any]) -> None:
    freq = session["signInFrequency"]
    if freq is not None and freq["isEnabled"] and freq["frequencyInterval"] != "everyTime":
        if freq["type"] is None or freq["value"] is None:
            raise bad("'signInFrequency' needs 'type' (days or hours) and 'value'.")
        limit = 365 if freq["type"] == "days" else 23
        if not 1 <= freq["value"] <= limit:
            raise bad(f"'signInFrequency.value' must be between 1 and {limit} {freq['type']}.")
    browser = session["persistentBrowser"]
    if browser is not None and browser["isEnabled"] and browser["mode"] is None:
        raise bad("'persistentBrowser' needs 'mode' (always or never).")


def _check_top(body: Any, props: T, type_name: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata.") or key in READ_ONLY:
            continue
        kind = props.get(key)
        if kind is None:
            raise unknown_property(key, type_name)
        out[key] = _check_value(type_name, key, kind, value, "")
    return out


def _merge(current: Any, change: Any) -> Any:
    """A PATCH value over the current one: objects merge property by property (so ``{"conditions":
    {"devices": …}}`` changes only the device filter, as Entra's own example does), anything else replaces."""
    if isinstance(current, dict) and isinstance(change, dict):
        merged = dict(current)
        for key, value in change.items():
            merged[key] = _merge(current.get(key), value)
        return merged
    return change


def normalize_policy(body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A create (``existing`` None) or a PATCH merged over ``existing``: the complete canonical policy."""
    given = _check_top(body, POLICY_PROPS, "conditionalAccessPolicy")  # names and types of the change
    if existing is None:
        policy = {key: None for key in POLICY_PROPS}
        policy.update(given)
    else:
        current = {key: existing.get(key) for key in POLICY_PROPS}
        raw = {k: v for k, v in body.items() if k in POLICY_PROPS}
        policy = _check_top(_merge(current, raw), POLICY_PROPS, "conditionalAccessPolicy")
    check_policy_rules(policy)
    return policy


# ---------------------------------------------------------------- named locations

IP_LOCATION = "#microsoft.graph.ipNamedLocation"
COUNTRY_LOCATION = "#microsoft.graph.countryNamedLocation"
IP_RANGE_TYPES = {
    "#microsoft.graph.iPv4CidrRange": ("cidr", 4),
    "#microsoft.graph.iPv6CidrRange": ("cidr", 6),
    "#microsoft.graph.iPv4Range": ("range", 4),
    "#microsoft.graph.iPv6Range": ("range", 6),
}
LOCATION_PROPS: dict[str, T] = {
    IP_LOCATION: {"displayName": "str", "ipRanges": "ranges", "isTrusted": "bool"},
    COUNTRY_LOCATION: {
        "displayName": "str",
        "countriesAndRegions": "strs",
        "countryLookupMethod": ("enum", ("clientIpAddress", "authenticatorAppGps", "unknownFutureValue")),
        "includeUnknownCountriesAndRegions": "bool",
    },
}


def _check_range(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise bad(f"Every value of '{where}' must be an ipRange object.")
    odata_type = item.get("@odata.type")
    if odata_type is None and "cidrAddress" in item:  # the type can be told from the address
        odata_type = (
            "#microsoft.graph.iPv6CidrRange"
            if ":" in str(item["cidrAddress"])
            else ("#microsoft.graph.iPv4CidrRange")
        )
    spec = IP_RANGE_TYPES.get(str(odata_type))
    if spec is None:
        raise bad(f"Every value of '{where}' needs an '@odata.type' of {', '.join(IP_RANGE_TYPES)}.")
    shape, version = spec
    allowed = (
        {"@odata.type", "cidrAddress"} if shape == "cidr" else {"@odata.type", "lowerAddress", "upperAddress"}
    )
    for key in item:
        if key not in allowed:
            name = str(odata_type).removeprefix("#microsoft.graph.")
            raise unknown_property(key, name)
    if shape == "cidr":
        cidr = item.get("cidrAddress")
        try:
            net = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError as exc:
            raise bad(f"'{cidr}' is not a valid CIDR range.") from exc
        if net.version != version or "/" not in str(cidr):
            raise bad(f"'{cidr}' is not a valid IPv{version} CIDR range.")
        if version == 4 and net.prefixlen <= 8:
            raise bad(f"'{cidr}': IPv4 CIDR ranges must have a mask greater than /8.")
        return {"@odata.type": odata_type, "cidrAddress": str(cidr)}
    try:
        low = ipaddress.ip_address(str(item.get("lowerAddress")))
        high = ipaddress.ip_address(str(item.get("upperAddress")))
    except ValueError as exc:
        raise bad(f"'{where}' has an address range with an invalid address.") from exc
    if low.version != version or high.version != version or int(low) > int(high):
        raise bad(f"'{where}' has an invalid IPv{version} address range.")
    return {"@odata.type": odata_type, "lowerAddress": str(low), "upperAddress": str(high)}


def normalize_named_location(body: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A create or a PATCH (Graph requires ``@odata.type`` on both, and it must not change)."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    odata_type = body.get("@odata.type")
    if odata_type not in LOCATION_PROPS:
        raise bad(f"The property '@odata.type' is required: '{IP_LOCATION}' or '{COUNTRY_LOCATION}'.")
    if existing is not None and existing["@odata.type"] != odata_type:
        raise bad("The '@odata.type' of a named location cannot be changed.")
    props = LOCATION_PROPS[odata_type]
    out: dict[str, Any] = {"@odata.type": odata_type}
    if existing is not None:
        out.update({k: existing.get(k) for k in props})
    kind_name = odata_type.removeprefix("#microsoft.graph.")
    for key, value in body.items():
        if key.startswith("@odata.") or key in READ_ONLY:
            continue
        kind = props.get(key)
        if kind is None:
            raise unknown_property(key, kind_name)
        if kind == "ranges":
            if not isinstance(value, list) or not value:
                raise bad("'ipRanges' must be a non-empty collection of ipRange objects.")
            if len(value) > MAX_IP_RANGES:
                raise bad(f"A named location can hold at most {MAX_IP_RANGES} IP ranges.")
            out[key] = [_check_range(v, key) for v in value]
        else:
            out[key] = _check_value(kind_name, key, kind, value, "")
    name = out.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise bad("The property 'displayName' is required and cannot be empty.")
    if len(name) > 256:
        raise bad("The value of 'displayName' is longer than 256 characters.")
    if odata_type == IP_LOCATION:
        if not out.get("ipRanges"):
            raise bad("The property 'ipRanges' is required for an ipNamedLocation.")
        out["isTrusted"] = bool(out.get("isTrusted"))
    else:
        countries = out.get("countriesAndRegions") or []
        for code in countries:
            if not COUNTRY_RE.match(code):
                raise bad(f"'{code}' is not a two-letter ISO 3166 country code (upper case).")
        if not countries and not out.get("includeUnknownCountriesAndRegions"):
            raise bad("The property 'countriesAndRegions' is required for a countryNamedLocation.")
        out["countriesAndRegions"] = list(dict.fromkeys(countries))
        out["countryLookupMethod"] = out.get("countryLookupMethod") or "clientIpAddress"
        out["includeUnknownCountriesAndRegions"] = bool(out.get("includeUnknownCountriesAndRegions"))
    return out
