"""The smallest end-to-end path: token from the token endpoint, create and read a user."""

from tests.support.server import TenantHandle, TestServer


def test_created_user_can_be_read_back_and_is_audited(server: TestServer, tenant: TenantHandle) -> None:
    with tenant.client() as c:
        created = c.post(
            "/v1.0/users",
            json={
                "accountEnabled": True,
                "displayName": "Ada Lovelace",
                "mailNickname": "ada",
                "userPrincipalName": f"ada@{tenant.domain}",
                "passwordProfile": {"password": "Analytical-Engine-1843"},
            },
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        got = c.get(f"/v1.0/users/{user_id}")
        assert got.status_code == 200
        assert got.json()["displayName"] == "Ada Lovelace"
    server.wait_for_jobs()
    assert server.scalar("SELECT activity FROM audit_log WHERE target_id = :id", id=user_id) == "Add user"
