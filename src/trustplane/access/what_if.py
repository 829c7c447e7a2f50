"""What-If: Graph's ``conditionalAccessRoot: evaluate``. Turns its request body (``signInIdentity``,
``signInContext``, ``signInConditions``, ``appliedPoliciesOnly``) into a ``SignInContext`` — the user's groups
read from the directory now — evaluates every policy of the tenant in explain mode and answers with one
``whatIfAnalysisResult`` per policy (the policy plus ``policyApplies`` and ``analysisReasons``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustplane.access import schemas, service
from trustplane.access.evaluator import Decision, DeviceInfo, SignInContext
from trustplane.access.repository import PolicyRepository
from trustplane.core.ids import is_uuid

USER_ACTIONS = {
    "registerSecurityInformation": "urn:user:registersecurityinfo",
    "registerOrJoinDevices": "urn:user:registerdevice",
}
CLIENT_APP_TYPES = ("browser", "mobileAppsAndDesktopClients", "exchangeActiveSync", "easSupported", "other")
DEVICE_PROPERTIES = frozenset(
    {
        "deviceId",
        "displayName",
        "deviceOwnership",
        "ownership",
        "enrollmentProfileName",
        "isCompliant",
        "manufacturer",
        "mdmAppId",
        "model",
        "operatingSystem",
        "operatingSystemVersion",
        "physicalIds",
        "profileType",
        "systemLabels",
        "trustType",
        *(f"extensionAttribute{i}" for i in range(1, 16)),
    }
)
CONDITIONS = {
    "devicePlatform": ("enum", schemas.PLATFORMS),
    "clientAppType": ("enum", CLIENT_APP_TYPES),
    "signInRiskLevel": ("enum", schemas.RISK_LEVELS),
    "userRiskLevel": ("enum", schemas.RISK_LEVELS),
    "servicePrincipalRiskLevel": ("enum", schemas.RISK_LEVELS),
    "insiderRiskLevel": ("enum", ("none", "minor", "moderate", "elevated", "unknownFutureValue")),
    "country": "str",
    "ipAddress": "str",
    "authenticationFlow": "object",
    "deviceInfo": "object",
}

bad = schemas.bad


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A required object parameter of the action."""
    value = body.get(key)
    if value is None:
        raise bad(f"The parameter '{key}' is required.")
    if not isinstance(value, dict):
        raise bad(f"The parameter '{key}' expects an object.")
    return value


def _only(value: dict[str, Any], allowed: set[str], type_name: str) -> None:
    for key in value:
        if key != "@odata.type" and key not in allowed:
            raise schemas.unknown_property(key, type_name)


def _string(value: dict[str, Any], key: str) -> str | None:
    item = value.get(key)
    if item is not None and not isinstance(item, str):
        raise bad(f"Property '{key}' expects a string value.")
    return item


def _conditions(raw: dict[str, Any]) -> dict[str, Any]:
    _only(raw, set(CONDITIONS), "signInConditions")
    for key, kind in CONDITIONS.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(kind, tuple) and value not in kind[1]:
            raise bad(f"'{value}' is not a valid value of '{key}'. Valid values: {', '.join(kind[1])}.")
        if kind == "str" and not isinstance(value, str):
            raise bad(f"Property '{key}' expects a string value.")
        if kind == "object" and not isinstance(value, dict):
            raise bad(f"Property '{key}' expects an object.")
    out: dict[str, Any] = {
        "platform": raw.get("devicePlatform"),
        "client_app_type": raw.get("clientAppType") or "browser",
        "sign_in_risk": raw.get("signInRiskLevel") or "none",
        "service_principal_risk": raw.get("servicePrincipalRiskLevel") or "none",
        "insider_risk": raw.get("insiderRiskLevel"),
        "country": (raw.get("country") or "").upper() or None,
        "ip_address": raw.get("ipAddress"),
    }
    if raw.get("userRiskLevel"):  # else a user's current risk from identity protection (user_sign_in_context)
        out["user_risk"] = raw["userRiskLevel"]
    flow = raw.get("authenticationFlow")
    if flow is not None:
        _only(flow, {"transferMethod"}, "authenticationFlow")
        method = flow.get("transferMethod")
        if method is not None and method not in schemas.TRANSFER_METHODS:
            raise bad(f"'{method}' is not a valid value of 'transferMethod'.")
        out["transfer_method"] = method
    device = raw.get("deviceInfo")
    if device:
        _only(device, set(DEVICE_PROPERTIES), "deviceInfo")
        out["device"] = DeviceInfo.from_graph(device)
    return out


async def evaluate(
    session: AsyncSession, tenant_id: str, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], Decision | None]:
    """The ``whatIfAnalysisResult`` collection for the request, and the decision when the request names
    a single resource (one application, a user action or an authentication context)."""
    _only(body, {"signInIdentity", "signInContext", "signInConditions", "appliedPoliciesOnly"}, "evaluate")
    identity = _object(body, "signInIdentity")
    context = _object(body, "signInContext")
    conditions = _conditions(_object(body, "signInConditions"))
    applied_only = body.get("appliedPoliciesOnly", False)
    if not isinstance(applied_only, bool):
        raise bad("The parameter 'appliedPoliciesOnly' expects a boolean value.")

    identity_type = identity.get("@odata.type", "").removeprefix("#")
    if identity_type == "microsoft.graph.userSignIn":
        _only(identity, {"userId", "externalTenantId", "externalUserType"}, "userSignIn")
        user_id = _string(identity, "userId")
        external_type = _string(identity, "externalUserType")
        if external_type is not None:
            members = [m.strip() for m in external_type.split(",") if m.strip()]
            for m in members:
                if m not in schemas.GUEST_TYPES:
                    raise bad(f"'{m}' is not a valid value of 'externalUserType'.")
            external_type = next((m for m in members if m != "none"), None)
        tenant = _string(identity, "externalTenantId")
        if user_id:
            ctx = await service.user_sign_in_context(
                session, tenant_id, user_id, guest_type=external_type, external_tenant_id=tenant, **conditions
            )
        elif external_type:
            ctx = SignInContext(guest_type=external_type, external_tenant_id=tenant, **conditions)
        else:
            raise bad("A userSignIn needs 'userId' (or 'externalUserType' for a user from another tenant).")
    elif identity_type == "microsoft.graph.servicePrincipalSignIn":
        _only(identity, {"servicePrincipalId"}, "servicePrincipalSignIn")
        sp = _string(identity, "servicePrincipalId")
        if not sp or not is_uuid(sp):
            raise bad("A servicePrincipalSignIn needs 'servicePrincipalId' (a GUID).")
        ctx = SignInContext(service_principal_id=sp, **conditions)
    else:
        raise bad(
            "'signInIdentity' needs an '@odata.type' of '#microsoft.graph.userSignIn' or "
            "'#microsoft.graph.servicePrincipalSignIn'."
        )

    context_type = context.get("@odata.type", "").removeprefix("#")
    contexts: list[SignInContext]
    if context_type == "microsoft.graph.applicationContext":
        _only(context, {"includeApplications"}, "applicationContext")
        apps = context.get("includeApplications")
        if not isinstance(apps, list) or not apps or not all(isinstance(a, str) for a in apps):
            raise bad("'includeApplications' must be a non-empty collection of application ids.")
        contexts = [replace(ctx, app_id=a) for a in dict.fromkeys(apps)]
    elif context_type == "microsoft.graph.userActionContext":
        _only(context, {"userAction"}, "userActionContext")
        action = USER_ACTIONS.get(str(context.get("userAction")))
        if action is None:
            raise bad(f"'userAction' must be one of {', '.join(USER_ACTIONS)}.")
        contexts = [replace(ctx, user_action=action)]
    elif context_type == "microsoft.graph.authContext":
        _only(context, {"authenticationContextValue"}, "authContext")
        value = _string(context, "authenticationContextValue")
        if not value:
            raise bad("'authenticationContextValue' is required (c1 to c99).")
        contexts = [replace(ctx, auth_context=value)]
    else:
        raise bad(
            "'signInContext' needs an '@odata.type' of '#microsoft.graph.applicationContext', "
            "'#microsoft.graph.userActionContext' or '#microsoft.graph.authContext'."
        )

    decisions = [await service.evaluate_sign_in(session, tenant_id, c, explain=True) for c in contexts]
    by_policy = [{r.policy_id: r for r in d.results} for d in decisions]
    results: list[dict[str, Any]] = []
    for policy_id, policy in await _policy_bodies(session, tenant_id):
        per_context = [found.get(policy_id) for found in by_policy]
        applies = any(r is not None and r.applies for r in per_context)
        if applied_only and not applies:
            continue
        first = next((r for r in per_context if r is not None), None)
        reasons = "notSet" if applies or first is None else first.reasons_text
        results.append({**policy, "policyApplies": applies, "analysisReasons": reasons})
    return results, decisions[0] if len(decisions) == 1 else None


async def _policy_bodies(session: AsyncSession, tenant_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p.id, service.policy_graph(p)) for p in await PolicyRepository(session, tenant_id).all()]
