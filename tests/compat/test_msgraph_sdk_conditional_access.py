"""The real Microsoft Graph Python SDK (msgraph-sdk) drives conditional access on a TrustPlane server on
loopback: policy and named-location create / get / list / update / delete through the SDK's own models and
request builders, its error type on bad input, and What-If (conditionalAccess.evaluate)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from msgraph.generated.identity.conditional_access.evaluate.evaluate_post_request_body import (
    EvaluatePostRequestBody,
)
from msgraph.generated.models.application_context import ApplicationContext
from msgraph.generated.models.conditional_access_applications import ConditionalAccessApplications
from msgraph.generated.models.conditional_access_client_app import ConditionalAccessClientApp
from msgraph.generated.models.conditional_access_condition_set import ConditionalAccessConditionSet
from msgraph.generated.models.conditional_access_device_platform import ConditionalAccessDevicePlatform
from msgraph.generated.models.conditional_access_devices import ConditionalAccessDevices
from msgraph.generated.models.conditional_access_filter import ConditionalAccessFilter
from msgraph.generated.models.conditional_access_grant_control import ConditionalAccessGrantControl
from msgraph.generated.models.conditional_access_grant_controls import ConditionalAccessGrantControls
from msgraph.generated.models.conditional_access_locations import ConditionalAccessLocations
from msgraph.generated.models.conditional_access_platforms import ConditionalAccessPlatforms
from msgraph.generated.models.conditional_access_policy import ConditionalAccessPolicy
from msgraph.generated.models.conditional_access_policy_state import ConditionalAccessPolicyState
from msgraph.generated.models.conditional_access_users import ConditionalAccessUsers
from msgraph.generated.models.country_named_location import CountryNamedLocation
from msgraph.generated.models.filter_mode import FilterMode
from msgraph.generated.models.i_pv4_cidr_range import IPv4CidrRange
from msgraph.generated.models.ip_named_location import IpNamedLocation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.risk_level import RiskLevel
from msgraph.generated.models.sign_in_conditions import SignInConditions
from msgraph.generated.models.user import User
from msgraph.generated.models.user_sign_in import UserSignIn

from tests.compat.test_msgraph_sdk import SdkClient
from tests.support.server import TenantHandle, TestServer

SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"


@pytest.fixture
async def ca_sdk(server: TestServer) -> AsyncIterator[SdkClient]:
    tenant: TenantHandle = server.tenant("Directory.ReadWrite.All", "Policy.ReadWrite.ConditionalAccess")
    client = SdkClient(tenant)
    client.tenant = tenant  # type: ignore[attr-defined]
    yield client
    await client.aclose()


def block_legacy(name: str = "Block legacy authentication") -> ConditionalAccessPolicy:
    return ConditionalAccessPolicy(
        display_name=name,
        state=ConditionalAccessPolicyState.EnabledForReportingButNotEnforced,
        conditions=ConditionalAccessConditionSet(
            users=ConditionalAccessUsers(include_users=["All"]),
            applications=ConditionalAccessApplications(include_applications=["All"]),
            client_app_types=[
                ConditionalAccessClientApp.ExchangeActiveSync,
                ConditionalAccessClientApp.Other,
            ],
        ),
        grant_controls=ConditionalAccessGrantControls(
            operator="OR", built_in_controls=[ConditionalAccessGrantControl.Block]
        ),
    )


async def test_policy_crud_through_the_sdk(ca_sdk: SdkClient) -> None:
    policies = ca_sdk.graph.identity.conditional_access.policies
    created = await policies.post(block_legacy())
    assert created is not None and created.id
    assert created.state == ConditionalAccessPolicyState.EnabledForReportingButNotEnforced
    assert created.conditions.client_app_types == [
        ConditionalAccessClientApp.ExchangeActiveSync,
        ConditionalAccessClientApp.Other,
    ]
    assert created.grant_controls.built_in_controls == [ConditionalAccessGrantControl.Block]

    item = policies.by_conditional_access_policy_id(created.id)
    await item.patch(ConditionalAccessPolicy(state=ConditionalAccessPolicyState.Enabled))
    fetched = await item.get()
    assert (
        fetched.state == ConditionalAccessPolicyState.Enabled
        and fetched.display_name == "Block legacy authentication"
    )
    assert fetched.conditions.users.include_users == ["All"]

    listed = await policies.get()
    assert [p.id for p in listed.value] == [created.id]

    await item.delete()
    with pytest.raises(ODataError) as info:
        await item.get()
    assert info.value.response_status_code == 404
    assert info.value.error.code == "Request_ResourceNotFound"


async def test_policy_with_platforms_locations_and_device_filter(ca_sdk: SdkClient) -> None:
    named = ca_sdk.graph.identity.conditional_access.named_locations
    office = await named.post(
        IpNamedLocation(
            display_name="Office", is_trusted=True, ip_ranges=[IPv4CidrRange(cidr_address="203.0.113.0/24")]
        )
    )
    policy = ConditionalAccessPolicy(
        display_name="Risky off-site Android",
        state=ConditionalAccessPolicyState.Enabled,
        conditions=ConditionalAccessConditionSet(
            users=ConditionalAccessUsers(include_users=["All"]),
            applications=ConditionalAccessApplications(include_applications=[SHAREPOINT]),
            platforms=ConditionalAccessPlatforms(include_platforms=[ConditionalAccessDevicePlatform.Android]),
            locations=ConditionalAccessLocations(include_locations=["All"], exclude_locations=[office.id]),
            sign_in_risk_levels=[RiskLevel.High, RiskLevel.Medium],
            devices=ConditionalAccessDevices(
                device_filter=ConditionalAccessFilter(
                    mode=FilterMode.Exclude, rule='device.extensionAttribute1 -eq "SAW"'
                )
            ),
        ),
        grant_controls=ConditionalAccessGrantControls(
            operator="OR", built_in_controls=[ConditionalAccessGrantControl.Mfa]
        ),
    )
    created = await ca_sdk.graph.identity.conditional_access.policies.post(policy)
    assert created.conditions.locations.exclude_locations == [office.id]
    assert created.conditions.platforms.include_platforms == [ConditionalAccessDevicePlatform.Android]
    assert created.conditions.devices.device_filter.mode == FilterMode.Exclude
    assert created.conditions.sign_in_risk_levels == [RiskLevel.High, RiskLevel.Medium]


async def test_bad_device_filter_raises_the_sdk_error_with_the_position(ca_sdk: SdkClient) -> None:
    policy = block_legacy()
    policy.conditions.devices = ConditionalAccessDevices(
        device_filter=ConditionalAccessFilter(mode=FilterMode.Include, rule="device.model -eq")
    )
    with pytest.raises(ODataError) as info:
        await ca_sdk.graph.identity.conditional_access.policies.post(policy)
    assert info.value.response_status_code == 400
    assert info.value.error.code == "Request_BadRequest"
    assert "position 17" in info.value.error.message


async def test_named_location_crud_through_the_sdk(ca_sdk: SdkClient) -> None:
    named = ca_sdk.graph.identity.conditional_access.named_locations
    ip = await named.post(
        IpNamedLocation(
            display_name="Branch", is_trusted=False, ip_ranges=[IPv4CidrRange(cidr_address="198.51.100.0/24")]
        )
    )
    country = await named.post(
        CountryNamedLocation(
            display_name="Embargo",
            countries_and_regions=["KP", "IR"],
            include_unknown_countries_and_regions=True,
        )
    )
    assert isinstance(ip, IpNamedLocation) and isinstance(country, CountryNamedLocation)
    assert ip.ip_ranges[0].cidr_address == "198.51.100.0/24"

    await named.by_named_location_id(ip.id).patch(IpNamedLocation(is_trusted=True))
    fetched = await named.by_named_location_id(ip.id).get()
    assert (
        isinstance(fetched, IpNamedLocation)
        and fetched.is_trusted is True
        and fetched.display_name == "Branch"
    )

    listed = await named.get()
    kinds = {type(loc).__name__: loc for loc in listed.value}
    assert set(kinds) == {"IpNamedLocation", "CountryNamedLocation"}
    assert kinds["CountryNamedLocation"].countries_and_regions == ["KP", "IR"]
    assert kinds["CountryNamedLocation"].include_unknown_countries_and_regions is True

    await named.by_named_location_id(country.id).delete()
    assert [loc.id for loc in (await named.get()).value] == [ip.id]


async def test_what_if_through_the_sdk(ca_sdk: SdkClient) -> None:
    tenant: TenantHandle = ca_sdk.tenant  # type: ignore[attr-defined]
    user = await ca_sdk.graph.users.post(
        User(
            account_enabled=True,
            display_name="Ada",
            mail_nickname="ada",
            user_principal_name=f"ada@{tenant.domain}",
            password_profile=PasswordProfile(password="Correct-Horse-9"),
        )
    )
    policies = ca_sdk.graph.identity.conditional_access.policies
    legacy = await policies.post(block_legacy())
    android = ConditionalAccessPolicy(
        display_name="Android only",
        state=ConditionalAccessPolicyState.Enabled,
        conditions=ConditionalAccessConditionSet(
            users=ConditionalAccessUsers(include_users=["All"]),
            applications=ConditionalAccessApplications(include_applications=["All"]),
            platforms=ConditionalAccessPlatforms(include_platforms=[ConditionalAccessDevicePlatform.Android]),
        ),
        grant_controls=ConditionalAccessGrantControls(
            operator="OR", built_in_controls=[ConditionalAccessGrantControl.Mfa]
        ),
    )
    android_policy = await policies.post(android)
    body = EvaluatePostRequestBody(
        sign_in_identity=UserSignIn(user_id=user.id),
        sign_in_context=ApplicationContext(include_applications=[SHAREPOINT]),
        sign_in_conditions=SignInConditions(
            client_app_type=ConditionalAccessClientApp.ExchangeActiveSync,
            device_platform=ConditionalAccessDevicePlatform.IOS,
        ),
    )
    result = await ca_sdk.graph.identity.conditional_access.evaluate.post(body)
    by_id = {r.id: r for r in result.value}
    assert by_id[legacy.id].policy_applies is True
    assert by_id[android_policy.id].policy_applies is False
    assert "devicePlatform" in str(by_id[android_policy.id].analysis_reasons)
