"""A user's counts in one row (``UserCountsRepository``): written where the row is still at the revision the
writer knew, else read under a lock and written from what was read, so concurrent learning of one user loses
no increment; the stored form reads back exactly."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protection.support import CHROME, T0, make_user, write
from tests.support.server import TestServer
from trustplane.protection import features, profiles, service
from trustplane.protection.repository import UserCountsRepository, decode_counts, encode_counts
from trustplane.protection.service import SignInAttempt


def stored(server: TestServer, tenant_id: str, user_id: str) -> tuple[dict[str, dict[str, int]], int]:
    async def read(session: Any) -> tuple[dict[str, dict[str, int]], int]:
        loaded = await UserCountsRepository(session, tenant_id).load(user_id)
        assert loaded is not None
        return loaded[0], loaded[1]

    return write(server, read)


def observe(server: TestServer, tenant_id: str, user_id: str, value: str, known: Any) -> Any:
    async def run(session: Any) -> Any:
        written = await UserCountsRepository(session, tenant_id).observe(user_id, [("ip", value)], T0, known)
        await session.commit()
        return written

    return write(server, run)


def test_a_write_from_a_stale_revision_reads_the_row_again_and_loses_nothing(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "stale")
    assert stored(server, tenant_id, user.id) == ({}, 0)
    first = observe(server, tenant_id, user.id, "=10.0.0.1", None)  # nothing known: read, then created
    assert first[1] == 1 and first[0] == {"ip": {"=10.0.0.1": 1, "#total": 1, "#distinct": 1}}
    # A writer that believes there is no row yet: its insert finds one, so it reads it and adds to it.
    second = observe(server, tenant_id, user.id, "=10.0.0.2", ({}, 0, None))
    assert second[1] == 2
    # A writer holding revision 1 while the row is at 2: its write matches nothing, so it reads and adds.
    third = observe(server, tenant_id, user.id, "=10.0.0.1", (first[0], 1, first[2]))
    counts, revision = stored(server, tenant_id, user.id)
    assert revision == 3 == third[1] and counts == third[0]
    assert counts == {"ip": {"=10.0.0.1": 2, "=10.0.0.2": 1, "#total": 3, "#distinct": 2}}
    # The current revision: one statement, written as it is.
    fourth = observe(server, tenant_id, user.id, "=10.0.0.3", (counts, 3, third[2]))
    assert fourth[1] == 4 and stored(server, tenant_id, user.id) == (fourth[0], 4)


def test_concurrent_learned_sign_ins_of_one_user_are_all_counted(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight sign-ins of one user decided from the same cached counts and learned in eight concurrent
    transactions: every one is counted (the first write wins its revision, the others read and add)."""
    replaced: list[bool] = []
    real_replace = UserCountsRepository._replace

    async def recorded(self: UserCountsRepository, *args: Any) -> bool:
        done = await real_replace(self, *args)
        replaced.append(done)
        return done

    monkeypatch.setattr(UserCountsRepository, "_replace", recorded)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "busy")
    home = {"ip_address": "81.2.69.160", "user_agent": CHROME}
    first = SignInAttempt(user.user_principal_name, T0, user_id=user.id, **home)
    write(server, lambda s: service.assess(s, tenant_id, first))
    cached = profiles.user(tenant_id, user.id, None)
    assert cached is not None and cached.revision == 1

    async def one(i: int) -> None:
        attempt = SignInAttempt(
            user.user_principal_name, T0 + timedelta(minutes=i + 1), user_id=user.id, **home
        )
        async with server.db.session() as session:
            await service.assess(session, tenant_id, attempt)
            await asyncio.sleep(0.05)  # hold the transaction open while the others write
            await session.commit()

    async def all_of_them() -> None:
        await asyncio.gather(*(one(i) for i in range(8)))

    server.run(all_of_them())
    counts, revision = stored(server, tenant_id, user.id)
    assert counts["ip"]["#total"] == 9 and counts["ip"]["=81.2.69.160"] == 9
    assert counts["ip"]["#distinct"] == 1
    assert revision == 9
    # Writes from the known revision that found the row moved on, then the ones made under the lock.
    assert replaced.count(False) >= 1 and replaced.count(True) == 8
    cached = profiles.user(tenant_id, user.id, None)
    assert cached is not None and (cached.counts, cached.revision) == (counts, revision)


values = st.text(min_size=0, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(features.FEATURES), st.dictionaries(values, st.integers(1, 2**31 - 1), min_size=1)
    )
)
def test_the_stored_form_reads_back_exactly(counts: dict[str, dict[str, int]]) -> None:
    assert decode_counts(encode_counts(counts)) == counts
