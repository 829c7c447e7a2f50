"""Show point 1 through the real Microsoft Graph Python SDK (msgraph-sdk) against a TrustPlane server on
loopback: a partner app confirms a user compromised; the user is then high risk with an
adminConfirmedUserCompromised detection and history; the What-If evaluation for that user now applies a
"block when user risk is high" policy; dismissing the user's risk restores access. Also the sign-in log and
the SDK's error type on bad input."""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.identity.conditional_access.evaluate.evaluate_post_request_body import (
    EvaluatePostRequestBody,
)
from msgraph.generated.identity_protection.risky_users.confirm_compromised.confirm_compromised_post_request_body import (  # noqa: E501
    ConfirmCompromisedPostRequestBody,
)
from msgraph.generated.identity_protection.risky_users.dismiss.dismiss_post_request_body import (
    DismissPostRequestBody,
)
from msgraph.generated.identity_protection.risky_users.risky_users_request_builder import (
    RiskyUsersRequestBuilder,
)
from msgraph.generated.models.application_context import ApplicationContext
from msgraph.generated.models.conditional_access_applications import ConditionalAccessApplications
from msgraph.generated.models.conditional_access_condition_set import ConditionalAccessConditionSet
from msgraph.generated.models.conditional_access_grant_control import ConditionalAccessGrantControl
from msgraph.generated.models.conditional_access_grant_controls import ConditionalAccessGrantControls
from msgraph.generated.models.conditional_access_policy import ConditionalAccessPolicy
from msgraph.generated.models.conditional_access_policy_state import ConditionalAccessPolicyState
from msgraph.generated.models.conditional_access_users import ConditionalAccessUsers
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.risk_detail import RiskDetail
from msgraph.generated.models.risk_level import RiskLevel
from msgraph.generated.models.risk_state import RiskState
from msgraph.generated.models.sign_in_conditions import SignInConditions
from msgraph.generated.models.user_sign_in import UserSignIn

from tests.compat.test_msgraph_sdk import SdkClient
from tests.protection.support import assess, make_user
from tests.support.server import TestServer

SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"


def block_high_user_risk() -> ConditionalAccessPolicy:
    return ConditionalAccessPolicy(
        display_name="Block high user risk",
        state=ConditionalAccessPolicyState.Enabled,
        conditions=ConditionalAccessConditionSet(
            users=ConditionalAccessUsers(include_users=["All"]),
            applications=ConditionalAccessApplications(include_applications=["All"]),
            user_risk_levels=[RiskLevel.High],
        ),
        grant_controls=ConditionalAccessGrantControls(
            operator="OR", built_in_controls=[ConditionalAccessGrantControl.Block]
        ),
    )


async def what_if_blocks(admin: SdkClient, user_id: str, policy_id: str) -> tuple[bool, list[str]]:
    body = EvaluatePostRequestBody(
        sign_in_identity=UserSignIn(user_id=user_id),
        sign_in_context=ApplicationContext(include_applications=[SHAREPOINT]),
        sign_in_conditions=SignInConditions(),
    )
    result = await admin.graph.identity.conditional_access.evaluate.post(body)
    assert result is not None and result.value is not None
    (row,) = [r for r in result.value if r.id == policy_id]
    return bool(row.policy_applies), [r.value for r in row.analysis_reasons or []]


async def test_partner_confirms_compromise_what_if_blocks_and_dismiss_restores(server: TestServer) -> None:
    tenant = server.tenant("Policy.ReadWrite.ConditionalAccess", "IdentityRiskyUser.Read.All")
    partner_app = tenant.app("IdentityRiskyUser.ReadWrite.All", name="Partner EDR")
    admin, partner = SdkClient(tenant), SdkClient(partner_app)
    try:
        user = make_user(server, tenant.tenant_id)
        policy = await admin.graph.identity.conditional_access.policies.post(block_high_user_risk())
        assert policy is not None and policy.id
        assert await what_if_blocks(admin, user.id, policy.id) == (False, ["userRisk"])

        risky_users = partner.graph.identity_protection.risky_users
        await risky_users.confirm_compromised.post(ConfirmCompromisedPostRequestBody(user_ids=[user.id]))

        risky = await admin.graph.identity_protection.risky_users.by_risky_user_id(user.id).get()
        assert risky is not None
        assert risky.risk_level == RiskLevel.High
        assert risky.risk_state == RiskState.ConfirmedCompromised
        assert risky.risk_detail == RiskDetail.AdminConfirmedUserCompromised
        history = await admin.graph.identity_protection.risky_users.by_risky_user_id(user.id).history.get()
        assert history is not None and history.value
        assert history.value[0].activity.risk_event_types == ["adminConfirmedUserCompromised"]
        assert history.value[0].initiated_by

        assert await what_if_blocks(admin, user.id, policy.id) == (True, ["notSet"])

        await risky_users.dismiss.post(DismissPostRequestBody(user_ids=[user.id]))
        risky = await admin.graph.identity_protection.risky_users.by_risky_user_id(user.id).get()
        assert risky is not None
        assert (risky.risk_level, risky.risk_state) == (RiskLevel.None_, RiskState.Dismissed)
        assert await what_if_blocks(admin, user.id, policy.id) == (False, ["userRisk"])
    finally:
        await admin.aclose()
        await partner.aclose()


async def test_detections_filter_and_sign_ins_through_the_sdk(server: TestServer) -> None:
    tenant = server.tenant(
        "IdentityRiskyUser.ReadWrite.All", "IdentityRiskEvent.Read.All", "AuditLog.Read.All"
    )
    client = SdkClient(tenant)
    try:
        user = make_user(server, tenant.tenant_id)
        signed_in = assess(server, tenant.tenant_id, user, ip_address="185.220.101.1")
        await client.graph.identity_protection.risky_users.confirm_compromised.post(
            ConfirmCompromisedPostRequestBody(user_ids=[user.id])
        )
        detections = await client.graph.identity_protection.risk_detections.get()
        assert detections is not None
        assert sorted(d.risk_event_type for d in detections.value) == [
            "adminConfirmedUserCompromised",
            "anonymizedIPAddress",
        ]
        query = RiskyUsersRequestBuilder.RiskyUsersRequestBuilderGetQueryParameters(
            filter="riskLevel eq 'high'"
        )
        high = await client.graph.identity_protection.risky_users.get(
            RequestConfiguration(query_parameters=query)
        )
        assert high is not None and [u.id for u in high.value] == [user.id]
        sign_ins = await client.graph.audit_logs.sign_ins.get()
        assert sign_ins is not None
        (sign_in,) = sign_ins.value
        assert sign_in.id == signed_in.sign_in.id
        assert sign_in.risk_level_during_sign_in == RiskLevel.Medium
        assert sign_in.risk_event_types_v2 == ["anonymizedIPAddress"]
        assert sign_in.location.country_or_region == "DE"

        with pytest.raises(ODataError) as info:
            await client.graph.identity_protection.risky_users.confirm_compromised.post(
                ConfirmCompromisedPostRequestBody(user_ids=["not-a-user"])
            )
        assert info.value.response_status_code == 400
    finally:
        await client.aclose()
