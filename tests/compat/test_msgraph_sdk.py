"""The real Microsoft Graph Python SDK (msgraph-sdk) against a TrustPlane server on loopback.

The SDK is used as an application would use it: a ``GraphServiceClient`` over a ``GraphRequestAdapter``
whose base URL is the server's ``/v1.0``, authenticated by Kiota's Azure Identity provider with a
client-credentials credential that fetches its token from TrustPlane's own token endpoint. (azure-identity's
``ClientSecretCredential`` refuses an authority that is not https, so the credential here does what it does —
POST ``client_credentials`` to ``{authority}/{tenant}/oauth2/v2.0/token`` — over plain http on loopback.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User
from msgraph.generated.users.count.count_request_builder import CountRequestBuilder
from msgraph.generated.users.item.check_member_groups.check_member_groups_post_request_body import (
    CheckMemberGroupsPostRequestBody,
)
from msgraph.generated.users.item.get_member_groups.get_member_groups_post_request_body import (
    GetMemberGroupsPostRequestBody,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.page_iterator import PageIterator

from tests.support.server import TenantHandle

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class LoopbackClientSecretCredential:
    """An azure-core ``AsyncTokenCredential``: client credentials against the tenant's token endpoint."""

    def __init__(self, authority: str, tenant_id: str, client_id: str, client_secret: str) -> None:
        self.token_url = f"{authority}/{tenant_id}/oauth2/v2.0/token"
        self.client_id = client_id
        self.client_secret = client_secret
        self.requests = 0
        self.cached: AccessToken | None = None

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.cached is not None and self.cached.expires_on > time.time() + 60:
            return self.cached
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "scope": " ".join(scopes),
                },
            )
        response.raise_for_status()
        body = response.json()
        self.requests += 1
        self.cached = AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))
        return self.cached

    async def close(self) -> None:
        return None


class SdkClient:
    """A GraphServiceClient for one app of one tenant, and the credential behind it."""

    def __init__(self, tenant: TenantHandle) -> None:
        self.credential = LoopbackClientSecretCredential(
            tenant.server.url, tenant.tenant_id, tenant.client_id, tenant.client_secret
        )
        auth = AzureIdentityAuthenticationProvider(
            self.credential,  # type: ignore[arg-type]
            scopes=[GRAPH_SCOPE],
            allowed_hosts=["127.0.0.1"],
        )
        # Our own httpx client (the SDK documents this for proxies) so the test can see each request.
        self.sent: list[httpx.Request] = []
        self.http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=30, event_hooks={"request": [self._record]})
        )
        self.adapter = GraphRequestAdapter(auth, client=self.http)
        self.adapter.base_url = f"{tenant.server.url}/v1.0"
        self.graph = GraphServiceClient(request_adapter=self.adapter)

    async def _record(self, request: httpx.Request) -> None:
        self.sent.append(request)

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def sdk(tenant: TenantHandle) -> AsyncIterator[SdkClient]:
    client = SdkClient(tenant)
    yield client
    await client.aclose()


def directory_object_url(object_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


def new_user(tenant: TenantHandle, alias: str, display_name: str, **extra: Any) -> User:
    return User(
        account_enabled=True,
        display_name=display_name,
        mail_nickname=alias,
        user_principal_name=f"{alias}@{tenant.domain}",
        password_profile=PasswordProfile(password=f"Pw-{uuid.uuid4().hex}"),
        **extra,
    )


def new_group(display_name: str) -> Group:
    alias = display_name.lower().replace(" ", "-")
    return Group(display_name=display_name, mail_enabled=False, mail_nickname=alias, security_enabled=True)


async def create_user(sdk: SdkClient, tenant: TenantHandle, alias: str, name: str, **extra: Any) -> User:
    user = await sdk.graph.users.post(new_user(tenant, alias, name, **extra))
    assert user is not None and user.id
    return user


async def create_group(sdk: SdkClient, name: str) -> Group:
    group = await sdk.graph.groups.post(new_group(name))
    assert group is not None and group.id
    return group


def eventual() -> dict[str, str]:
    return {"ConsistencyLevel": "eventual"}


# ---------------------------------------------------------------- create, read, update, delete


async def test_sdk_creates_reads_updates_and_deletes_a_user_with_a_token_from_the_token_endpoint(
    sdk: SdkClient, tenant: TenantHandle
) -> None:
    created = await create_user(sdk, tenant, "grace", "Grace Hopper", job_title="Rear Admiral")
    assert created.user_principal_name == f"grace@{tenant.domain}"
    assert created.display_name == "Grace Hopper"
    # The SDK asked the credential, which asked the token endpoint once, and the token went on the request.
    assert sdk.credential.requests == 1
    assert sdk.credential.cached is not None
    assert sdk.sent[0].headers["Authorization"] == f"Bearer {sdk.credential.cached.token}"
    assert sdk.sent[0].url.host == "127.0.0.1"

    by_upn = await sdk.graph.users.by_user_id(f"grace@{tenant.domain}").get()
    assert by_upn is not None and by_upn.id == created.id

    await sdk.graph.users.by_user_id(str(created.id)).patch(User(job_title="Commodore", department="Navy"))
    config = RequestConfiguration(
        query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "jobTitle", "department", "accountEnabled"]
        )
    )
    updated = await sdk.graph.users.by_user_id(str(created.id)).get(request_configuration=config)
    assert updated is not None
    assert (updated.job_title, updated.department, updated.account_enabled) == ("Commodore", "Navy", True)
    assert updated.display_name is None  # not selected

    await sdk.graph.users.by_user_id(str(created.id)).delete()
    with pytest.raises(ODataError) as gone:
        await sdk.graph.users.by_user_id(str(created.id)).get()
    assert gone.value.response_status_code == 404
    assert gone.value.error is not None and gone.value.error.code == "Request_ResourceNotFound"


async def test_sdk_creates_updates_and_deletes_a_group(sdk: SdkClient) -> None:
    created = await create_group(sdk, "Compilers")
    assert created.security_enabled is True and created.mail_enabled is False
    assert created.created_date_time is not None

    await sdk.graph.groups.by_group_id(str(created.id)).patch(Group(description="COBOL and friends"))
    got = await sdk.graph.groups.by_group_id(str(created.id)).get()
    assert got is not None and got.description == "COBOL and friends"
    assert got.display_name == "Compilers"

    await sdk.graph.groups.by_group_id(str(created.id)).delete()
    with pytest.raises(ODataError) as gone:
        await sdk.graph.groups.by_group_id(str(created.id)).get()
    assert gone.value.response_status_code == 404
    assert gone.value.error is not None and gone.value.error.code == "Request_ResourceNotFound"


# ---------------------------------------------------------------- listing


async def test_sdk_lists_users_with_filter_select_top_orderby_and_count(
    sdk: SdkClient, tenant: TenantHandle
) -> None:
    for alias, name, dept in [
        ("ann", "Ann Archer", "Research"),
        ("bob", "Bob Baker", "Sales"),
        ("cal", "Cal Carter", "Research"),
        ("dee", "Dee Dale", "Research"),
    ]:
        await create_user(sdk, tenant, alias, name, department=dept)

    params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        filter="department eq 'Research'",
        select=["id", "displayName", "department"],
        orderby=["displayName desc"],
        top=2,
        count=True,
    )
    config = RequestConfiguration(query_parameters=params)
    config.headers.add_all(eventual())
    page = await sdk.graph.users.get(request_configuration=config)
    assert page is not None and page.value is not None
    assert page.odata_count == 3
    assert [u.display_name for u in page.value] == ["Dee Dale", "Cal Carter"]
    assert all(u.department == "Research" and u.user_principal_name is None for u in page.value)
    assert page.odata_next_link  # a third match remains

    rest = await sdk.graph.users.with_url(page.odata_next_link).get(request_configuration=config)
    assert rest is not None and rest.value is not None
    assert [u.display_name for u in rest.value] == ["Ann Archer"]
    assert rest.odata_next_link is None

    count_config = RequestConfiguration(
        query_parameters=CountRequestBuilder.CountRequestBuilderGetQueryParameters(
            filter="department eq 'Research'"
        )
    )
    count_config.headers.add_all(eventual())
    assert await sdk.graph.users.count.get(request_configuration=count_config) == 3

    search_config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            search='"displayName:carter"', select=["displayName"]
        )
    )
    search_config.headers.add_all(eventual())
    found = await sdk.graph.users.get(request_configuration=search_config)
    assert found is not None and [u.display_name for u in found.value or []] == ["Cal Carter"]

    groups_config = RequestConfiguration(
        query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            filter="startswith(displayName, 'Nothing')"
        )
    )
    groups = await sdk.graph.groups.get(request_configuration=groups_config)
    assert groups is not None and groups.value == []


async def test_sdk_page_iterator_follows_next_link_through_at_least_three_pages(
    sdk: SdkClient, tenant: TenantHandle
) -> None:
    created = {str((await create_user(sdk, tenant, f"pager{i:02d}", f"Pager {i:02d}")).id) for i in range(13)}

    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            top=5, select=["id", "displayName"], filter="startswith(displayName, 'Pager')"
        )
    )
    first = await sdk.graph.users.get(request_configuration=config)
    assert first is not None and first.value is not None and len(first.value) == 5
    assert first.odata_next_link and "$skiptoken=" in first.odata_next_link

    seen: list[str] = []
    before = len(sdk.sent)
    iterator = PageIterator(first, sdk.adapter)

    def collect(user: User) -> bool:
        seen.append(str(user.id))
        return True

    await iterator.iterate(collect)
    assert len(seen) == 13 and set(seen) == created  # every user exactly once
    followed = [str(r.url) for r in sdk.sent[before:]]
    assert len(followed) == 2  # pages 2 and 3, each fetched from the previous page's @odata.nextLink
    assert followed[0] == first.odata_next_link
    assert all("%24skiptoken=" in u or "$skiptoken=" in u for u in followed)
    assert not iterator.current_page.odata_next_link  # the last page ended the iteration


# ---------------------------------------------------------------- membership


async def test_sdk_membership_with_a_nested_group_is_transitive(sdk: SdkClient, tenant: TenantHandle) -> None:
    user = await create_user(sdk, tenant, "nested", "Nested Member")
    outer = await create_group(sdk, "Outer")
    inner = await create_group(sdk, "Inner")
    unrelated = await create_group(sdk, "Unrelated")
    uid, outer_id, inner_id = str(user.id), str(outer.id), str(inner.id)

    await sdk.graph.groups.by_group_id(inner_id).members.ref.post(
        ReferenceCreate(odata_id=directory_object_url(uid))
    )
    await sdk.graph.groups.by_group_id(outer_id).members.ref.post(
        ReferenceCreate(odata_id=directory_object_url(inner_id))
    )

    members = await sdk.graph.groups.by_group_id(outer_id).members.get()
    assert members is not None and members.value is not None
    assert [(type(m).__name__, m.id) for m in members.value] == [("Group", inner_id)]
    transitive = await sdk.graph.groups.by_group_id(outer_id).transitive_members.get()
    assert transitive is not None and transitive.value is not None
    assert {(type(m).__name__, m.id) for m in transitive.value} == {("Group", inner_id), ("User", uid)}

    direct = await sdk.graph.users.by_user_id(uid).member_of.get()
    assert direct is not None and direct.value is not None
    assert [g.id for g in direct.value] == [inner_id]
    member_of = await sdk.graph.users.by_user_id(uid).transitive_member_of.get()
    assert member_of is not None and member_of.value is not None
    assert all(isinstance(g, Group) for g in member_of.value)
    assert {g.id for g in member_of.value} == {outer_id, inner_id}

    groups = await sdk.graph.users.by_user_id(uid).get_member_groups.post(
        GetMemberGroupsPostRequestBody(security_enabled_only=False)
    )
    assert groups is not None and set(groups.value or []) == {outer_id, inner_id}

    checked = await sdk.graph.users.by_user_id(uid).check_member_groups.post(
        CheckMemberGroupsPostRequestBody(group_ids=[outer_id, inner_id, str(unrelated.id)])
    )
    assert checked is not None and sorted(checked.value or []) == sorted([outer_id, inner_id])

    await sdk.graph.groups.by_group_id(inner_id).members.by_directory_object_id(uid).ref.delete()
    after = await sdk.graph.users.by_user_id(uid).get_member_groups.post(
        GetMemberGroupsPostRequestBody(security_enabled_only=False)
    )
    assert after is not None and after.value == []
    checked_after = await sdk.graph.users.by_user_id(uid).check_member_groups.post(
        CheckMemberGroupsPostRequestBody(group_ids=[outer_id, inner_id])
    )
    assert checked_after is not None and checked_after.value == []


# ---------------------------------------------------------------- errors


async def test_sdk_raises_odata_error_request_bad_request_for_a_malformed_filter(sdk: SdkClient) -> None:
    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(filter="displayName eq")
    )
    with pytest.raises(ODataError) as raised:
        await sdk.graph.users.get(request_configuration=config)
    assert raised.value.response_status_code == 400
    assert raised.value.error is not None and raised.value.error.code == "Request_BadRequest"
    assert raised.value.error.message and "filter" in raised.value.error.message.lower()
    assert raised.value.error.inner_error is not None and raised.value.error.inner_error.request_id


async def test_sdk_raises_odata_error_resource_not_found_for_an_unknown_id(sdk: SdkClient) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(ODataError) as user_error:
        await sdk.graph.users.by_user_id(unknown).get()
    assert user_error.value.response_status_code == 404
    assert user_error.value.error is not None and user_error.value.error.code == "Request_ResourceNotFound"

    with pytest.raises(ODataError) as member_error:
        await sdk.graph.groups.by_group_id(unknown).members.ref.post(
            ReferenceCreate(odata_id=directory_object_url(str(uuid.uuid4())))
        )
    assert member_error.value.response_status_code == 404
    assert member_error.value.error is not None
    assert member_error.value.error.code == "Request_ResourceNotFound"


async def test_sdk_raises_odata_error_with_object_conflict_for_a_duplicate_user_principal_name(
    sdk: SdkClient, tenant: TenantHandle
) -> None:
    await create_user(sdk, tenant, "twin", "First Twin")
    with pytest.raises(ODataError) as raised:
        await sdk.graph.users.post(new_user(tenant, "twin", "Second Twin"))
    error = raised.value.error
    assert raised.value.response_status_code == 400
    assert error is not None and error.code == "Request_BadRequest"
    assert error.message and "userPrincipalName" in error.message
    assert [(d.code, d.target) for d in error.details or []] == [("ObjectConflict", "userPrincipalName")]

    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            filter=f"userPrincipalName eq 'twin@{tenant.domain}'", select=["displayName"]
        )
    )
    listed = await sdk.graph.users.get(request_configuration=config)
    assert listed is not None and [u.display_name for u in listed.value or []] == ["First Twin"]


async def test_sdk_raises_odata_error_authorization_request_denied_without_the_permission(
    tenant: TenantHandle,
) -> None:
    reader = SdkClient(tenant.app("User.Read.All", name="reader"))
    try:
        listed = await reader.graph.users.get()  # reading is allowed
        assert listed is not None and listed.value == []
        with pytest.raises(ODataError) as raised:
            await reader.graph.users.post(new_user(tenant, "nope", "Not Allowed"))
        assert raised.value.response_status_code == 403
        assert raised.value.error is not None and raised.value.error.code == "Authorization_RequestDenied"
    finally:
        await reader.aclose()
    with tenant.client() as c:
        assert c.get("/v1.0/users").json()["value"] == []  # nothing was written
