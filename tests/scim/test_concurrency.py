"""Concurrent SCIM writers: member PATCHes without If-Match never lose an update (each is one edge and an
atomic version increment), and of concurrent PUTs holding the same ETag exactly one wins, the rest get 412."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.scim.support import PATCH_OP, USER, create_group, create_user, scim_token
from tests.support.server import TenantHandle

WRITERS = 20


def test_twenty_concurrent_member_adds_keep_every_member(tenant: TenantHandle) -> None:
    token = scim_token(tenant)
    base = f"{tenant.server.url}/scim/v2"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as setup:
        first = create_user(setup, "first@example.com")
        group = create_group(setup, "Busy", [first["id"]])
        users = [create_user(setup, f"writer{i}@example.com")["id"] for i in range(WRITERS)]

    def add(user_id: str) -> int:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            body = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
            }
            return client.patch(f"/Groups/{group['id']}", json=body).status_code

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        statuses = list(pool.map(add, users))
    assert statuses == [204] * WRITERS
    with httpx.Client(base_url=base, headers=headers, timeout=60) as check:
        final = check.get(f"/Groups/{group['id']}").json()
    assert sorted(m["value"] for m in final["members"]) == sorted([first["id"], *users])
    # every change moved the version once: created (1), first member (2), then one per writer
    assert final["meta"]["version"] == f'W/"{2 + WRITERS}"'


def test_concurrent_puts_with_the_same_etag_one_wins_the_rest_get_412(tenant: TenantHandle) -> None:
    token = scim_token(tenant)
    base = f"{tenant.server.url}/scim/v2"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as setup:
        user = create_user(setup, "contended@example.com")
    etag = user["meta"]["version"]

    def put(i: int) -> int:
        with httpx.Client(base_url=base, headers={**headers, "If-Match": etag}, timeout=60) as client:
            body = {"schemas": [USER], "userName": "contended@example.com", "title": f"writer {i}"}
            return client.put(f"/Users/{user['id']}", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(put, range(10)))
    assert statuses == [200] + [412] * 9
    with httpx.Client(base_url=base, headers=headers, timeout=60) as check:
        assert check.get(f"/Users/{user['id']}").json()["title"].startswith("writer ")
