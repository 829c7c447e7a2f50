"""The per-process row cache (core.cache): its rules on their own, then through the Graph face: a reader
never sees a change later than its own write in this process, sees every other process's change as soon as
the notification arrives, and the cache is bypassed and emptied while its listener is disconnected."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.server import TenantHandle, TestServer, free_port
from trustplane.core.cache import LISTENER_NAME, RowCache, RowCaches

Row = namedtuple("Row", ["id", "tenant_id", "user_principal_name", "display_name"])


def enabled_cache(max_entries: int = 10) -> RowCache:
    cache = RowCache("users", max_entries)
    cache.enabled = True
    return cache


def row(object_id: str, upn: str, tenant: str = "t1", name: str = "Ada") -> Row:
    return Row(object_id, tenant, upn, name)


# ------------------------------------------------------------------ the rules


def test_a_stored_row_is_found_by_id_and_by_lowercased_key() -> None:
    cache = enabled_cache()
    cache.put(cache.read_token(), row("u1", "Ada@Example.com"))
    assert cache.get("t1", "u1") == row("u1", "Ada@Example.com")
    assert cache.get_by_key("t1", "ada@example.com") == row("u1", "Ada@Example.com")


def test_a_row_of_another_tenant_is_not_returned() -> None:
    cache = enabled_cache()
    cache.put(cache.read_token(), row("u1", "ada@example.com", tenant="t1"))
    assert cache.get("t2", "u1") is None
    assert cache.get_by_key("t2", "ada@example.com") is None


def test_a_row_read_before_an_invalidation_is_not_stored() -> None:
    cache = enabled_cache()
    token = cache.read_token()  # a reader starts reading the old row...
    cache.invalidate({"u1"})  # ...a change commits meanwhile...
    cache.put(token, row("u1", "ada@example.com", name="old"))  # ...and the stale read must not stick
    assert cache.get("t1", "u1") is None


def test_invalidating_a_row_drops_its_key_too() -> None:
    cache = enabled_cache()
    cache.put(cache.read_token(), row("u1", "old@example.com"))
    cache.invalidate({"u1"})
    assert cache.get_by_key("t1", "old@example.com") is None
    cache.put(cache.read_token(), row("u1", "new@example.com"))
    assert cache.get_by_key("t1", "old@example.com") is None
    assert cache.get_by_key("t1", "new@example.com") is not None


def test_invalidating_everything_empties_the_cache() -> None:
    cache = enabled_cache()
    cache.put(cache.read_token(), row("u1", "a@example.com"))
    cache.put(cache.read_token(), row("u2", "b@example.com"))
    cache.invalidate({"*"})
    assert len(cache) == 0


def test_a_disabled_cache_neither_answers_nor_stores() -> None:
    cache = enabled_cache()
    cache.put(cache.read_token(), row("u1", "a@example.com"))
    cache.enabled = False
    assert cache.get("t1", "u1") is None
    assert cache.read_token() is None
    cache.put(cache.read_token(), row("u2", "b@example.com"))
    cache.enabled = True
    assert cache.get("t1", "u2") is None


def test_the_cache_holds_at_most_max_entries_dropping_the_oldest() -> None:
    cache = enabled_cache(max_entries=3)
    for i in range(5):
        cache.put(cache.read_token(), row(f"u{i}", f"user{i}@example.com"))
    assert len(cache) == 3
    assert cache.get("t1", "u0") is None and cache.get_by_key("t1", "user1@example.com") is None
    assert cache.get("t1", "u4") is not None


def test_caches_start_off_until_their_listener_connects() -> None:
    caches = RowCaches(100)
    users = caches.get("users")
    assert users is not None and not users.enabled and not caches.listening


# ------------------------------------------------------------------ through the Graph face


def make_user(c: httpx.Client, domain: str, alias: str) -> dict[str, Any]:
    response = c.post(
        "/v1.0/users",
        json={
            "accountEnabled": True,
            "displayName": alias.title(),
            "mailNickname": alias,
            "userPrincipalName": f"{alias}@{domain}",
            "passwordProfile": {"password": "Correct-Horse-42"},
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def by_upn(c: httpx.Client, upn: str) -> list[str]:
    response = c.get("/v1.0/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
    assert response.status_code == 200, response.text
    return [v["id"] for v in response.json()["value"]]


def hits(server: TestServer) -> float:
    from trustplane.core.observability import REGISTRY

    value = REGISTRY.get_sample_value(
        "trustplane_row_cache_lookups_total", {"table": "users", "result": "hit"}
    )
    return value or 0.0


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def listening(server: TestServer) -> bool:
    caches = server.app.state.db.row_caches
    return caches is not None and bool(caches.listening)


def test_user_reads_are_answered_from_the_row_cache_on_postgresql_only(
    server: TestServer, tenant: TenantHandle
) -> None:
    caches = server.app.state.db.row_caches
    if server.backend == "sqlite":  # no cross-process notification there, so no cache
        assert caches is None
        return
    assert wait_until(lambda: listening(server))
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "cached.reader")
        assert c.get(f"/v1.0/users/{user['id']}").status_code == 200
        before = hits(server)
        assert c.get(f"/v1.0/users/{user['id']}").json()["displayName"] == "Cached.Reader"
        assert by_upn(c, user["userPrincipalName"].upper()) == [user["id"]]
    assert hits(server) == before + 2


def test_a_change_is_read_back_at_once_in_the_same_process(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "read.your.writes")
        for round_ in range(3):
            assert c.get(f"/v1.0/users/{user['id']}").status_code == 200  # cached (on PostgreSQL)
            name = f"Renamed {round_}"
            assert c.patch(f"/v1.0/users/{user['id']}", json={"displayName": name}).status_code == 204
            assert c.get(f"/v1.0/users/{user['id']}").json()["displayName"] == name


def test_a_new_user_principal_name_is_found_and_the_old_one_no_longer(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "old.name")
        old, new = user["userPrincipalName"], f"new.name@{tenant.domain}"
        assert by_upn(c, old) == [user["id"]]
        assert c.get(f"/v1.0/users/{old}").status_code == 200
        assert c.patch(f"/v1.0/users/{user['id']}", json={"userPrincipalName": new}).status_code == 204
        assert by_upn(c, old) == []
        assert c.get(f"/v1.0/users/{old}").status_code == 404
        assert by_upn(c, new) == [user["id"]]
        assert c.get(f"/v1.0/users/{new}").json()["id"] == user["id"]


def test_a_deleted_user_is_gone_at_once(tenant: TenantHandle) -> None:
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "short.lived")
        assert c.get(f"/v1.0/users/{user['id']}").status_code == 200
        assert by_upn(c, user["userPrincipalName"]) == [user["id"]]
        assert c.delete(f"/v1.0/users/{user['id']}").status_code == 204
        assert c.get(f"/v1.0/users/{user['id']}").status_code == 404
        assert by_upn(c, user["userPrincipalName"]) == []
        member_groups = c.post(
            f"/v1.0/users/{user['id']}/getMemberGroups", json={"securityEnabledOnly": False}
        )
        assert member_groups.status_code == 404


# ------------------------------------------------------------------ other processes (PostgreSQL)


def sync_url(server: TestServer) -> str:
    return server.database_url.replace("postgresql+asyncpg://", "postgresql+psycopg://")


def execute(server: TestServer, sql: str, **params: Any) -> None:
    """A statement from a connection of its own, committed: a change this process's ORM never saw."""
    engine = sa.create_engine(sync_url(server))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def test_a_change_by_another_connection_reaches_the_cache_through_notify(
    server: TestServer, tenant: TenantHandle
) -> None:
    if server.backend != "postgresql":
        pytest.skip("cross-process invalidation is PostgreSQL's (the cache is off on SQLite)")
    assert wait_until(lambda: listening(server))
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "raw.update")
        assert c.get(f"/v1.0/users/{user['id']}").json()["jobTitle"] is None
        assert c.get(f"/v1.0/users/{user['id']}").json()["jobTitle"] is None  # now cached
        execute(server, "UPDATE users SET job_title = 'Auditor' WHERE id = :id", id=user["id"])
        assert wait_until(lambda: c.get(f"/v1.0/users/{user['id']}").json()["jobTitle"] == "Auditor", 5)


def test_while_the_listener_is_cut_off_the_cache_is_bypassed_and_emptied_on_reconnect(
    server: TestServer, tenant: TenantHandle
) -> None:
    if server.backend != "postgresql":
        pytest.skip("the listener is PostgreSQL's")
    assert wait_until(lambda: listening(server))
    with tenant.client() as c:
        user = make_user(c, tenant.domain, "cut.off")
        c.get(f"/v1.0/users/{user['id']}")
        assert c.get(f"/v1.0/users/{user['id']}").json()["officeLocation"] is None  # cached
        caches = server.app.state.db.row_caches
        assert caches is not None
        users = caches.get("users")
        assert users is not None and users.get(tenant.tenant_id, user["id"]) is not None
        execute(
            server,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = :name AND datname = current_database()",
            name=LISTENER_NAME,
        )
        # The termination is noticed and the cache emptied, before the listener reconnects.
        assert wait_until(lambda: users.get(tenant.tenant_id, user["id"]) is None, 5)
        execute(server, "UPDATE users SET office_location = 'Annex' WHERE id = :id", id=user["id"])
        assert c.get(f"/v1.0/users/{user['id']}").json()["officeLocation"] == "Annex"
        assert wait_until(lambda: listening(server), 10)  # back, and caching again
        c.get(f"/v1.0/users/{user['id']}")
        assert users.get(tenant.tenant_id, user["id"]) is not None
        assert c.get(f"/v1.0/users/{user['id']}").json()["officeLocation"] == "Annex"


@pytest.fixture
def second_server(server: TestServer, tmp_path: Path) -> Iterator[str]:
    """Another ``trustplane serve`` process on the same PostgreSQL database."""
    if server.backend != "postgresql":
        pytest.skip("two processes share a database on PostgreSQL")
    port = free_port()
    env = {
        **os.environ,
        "TRUSTPLANE_DATABASE_URL": server.database_url,
        "TRUSTPLANE_DATA_DIR": str(tmp_path),
        "TRUSTPLANE_RUN_WORKER_IN_PROCESS": "false",
        "TRUSTPLANE_LOG_LEVEL": "warning",
    }
    cli = Path(sys.executable).parent / "trustplane"
    proc = subprocess.Popen(
        [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, 60), "the second server did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_change_made_through_one_server_process_is_seen_by_another(
    server: TestServer, tenant: TenantHandle, second_server: str
) -> None:
    metrics = tenant.app("Metrics.Read", name="metrics reader")
    with (
        tenant.client() as first,
        httpx.Client(base_url=second_server, timeout=30) as second,
    ):
        token = second.post(
            f"/{tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": tenant.client_id,
                "client_secret": tenant.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        metrics_token = second.post(
            f"/{tenant.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": metrics.client_id,
                "client_secret": metrics.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        second.headers["Authorization"] = f"Bearer {token}"

        def second_metric(line_start: str) -> float:
            text = second.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"}).text
            values = [
                float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
            ]
            return sum(values)

        assert wait_until(lambda: second_metric("trustplane_row_cache_listening") == 1, 20)
        user = make_user(first, tenant.domain, "two.processes")
        hit = 'trustplane_row_cache_lookups_total{result="hit",table="users"}'
        for _ in range(2):
            assert second.get(f"/v1.0/users/{user['id']}").json()["displayName"] == "Two.Processes"
        assert second_metric(hit) >= 1  # the second process answers from its cache

        assert first.patch(f"/v1.0/users/{user['id']}", json={"displayName": "Changed"}).status_code == 204
        assert wait_until(
            lambda: second.get(f"/v1.0/users/{user['id']}").json()["displayName"] == "Changed", 5
        )
        assert first.delete(f"/v1.0/users/{user['id']}").status_code == 204
        assert wait_until(lambda: second.get(f"/v1.0/users/{user['id']}").status_code == 404, 5)


# ------------------------------------------------------------------ commits in this process, on their own


def cache_holding(user: dict[str, Any], tenant: TenantHandle) -> tuple[RowCaches, RowCache]:
    """Caches of this process with ``user`` in them and no listener: only this process's commits reach them
    (the caller keeps ``RowCaches`` alive: the process tracks live ones weakly)."""
    caches = RowCaches(100)
    users = caches.get("users")
    assert users is not None
    users.enabled = True
    users.put(users.read_token(), row(user["id"], user["userPrincipalName"], tenant=tenant.tenant_id))
    assert users.get(tenant.tenant_id, user["id"]) is not None
    return caches, users


def test_a_committed_orm_change_drops_the_row_before_commit_returns(
    server: TestServer, tenant: TenantHandle
) -> None:
    from trustplane.core.events import SYSTEM
    from trustplane.directory import service

    with tenant.client() as c:
        user = make_user(c, tenant.domain, "orm.change")
    _caches, users = cache_holding(user, tenant)

    async def rename() -> None:
        async with server.db.session() as session:
            await service.update_user(session, tenant.tenant_id, SYSTEM, user["id"], {"display_name": "New"})

    server.run(rename())
    assert users.get(tenant.tenant_id, user["id"]) is None


def test_a_version_moved_by_a_statement_drops_the_row_before_commit_returns(
    server: TestServer, tenant: TenantHandle
) -> None:
    """SCIM's If-Match claims the version with one UPDATE statement on the table, no ORM change."""
    from trustplane.directory import service

    with tenant.client() as c:
        user = make_user(c, tenant.domain, "version.claim")
    _caches, users = cache_holding(user, tenant)

    async def claim() -> None:
        async with server.db.session() as session:
            loaded = await service.get_user(session, tenant.tenant_id, user["id"])
            await service.claim_version(session, loaded, loaded.version)

    server.run(claim())
    assert users.get(tenant.tenant_id, user["id"]) is None


def test_a_rolled_back_change_leaves_the_row(server: TestServer, tenant: TenantHandle) -> None:
    from trustplane.core.events import SYSTEM
    from trustplane.directory import service

    with tenant.client() as c:
        user = make_user(c, tenant.domain, "rolled.back")
    _caches, users = cache_holding(user, tenant)

    async def rename_then_fail() -> None:
        async with server.db.session() as session:
            await service.update_user(session, tenant.tenant_id, SYSTEM, user["id"], {"display_name": "New"})
            raise RuntimeError("abandon the unit of work")

    with pytest.raises(RuntimeError):
        server.run(rename_then_fail())
    assert users.get(tenant.tenant_id, user["id"]) is not None
