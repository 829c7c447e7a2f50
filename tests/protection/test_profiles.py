"""The per-process profile cache ``decide`` reads: a warm user's decision runs no SQL statement (the
tenant-wide counts from the tenant's snapshot, equal to reading them), a user's first touch is one statement,
a committed ``learn`` is in the cache at once (a rolled-back one is not), and a change of the user's risk in
this process or another reaches the next decision."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.protection.support import CHROME, T0, assess, make_user, write
from tests.support.server import TestServer
from trustplane.core.cache import follow_changes
from trustplane.core.db import driver_rows
from trustplane.core.events import SYSTEM
from trustplane.protection import cache, features, profiles, repository, service
from trustplane.protection.repository import FeatureCountRepository
from trustplane.protection.service import SignInAttempt

HOME = {"ip_address": "81.2.69.160", "user_agent": CHROME}


def found(profile: service.Profile, keys: list[tuple[str, str]]) -> dict[tuple[str, str, str], int]:
    """The profile's non-zero counts among ``keys`` as (subject, feature, value) -> count, subject the user's
    id or "*" (what a read of those keys from the database gives)."""
    out: dict[tuple[str, str, str], int] = {}
    for feature, value in keys:
        if n := profile.user_count(feature, value):
            out[(profile.user_id, feature, value)] = n
        if n := profile.tenant_count(feature, value):
            out[("*", feature, value)] = n
    return out


def statements_during(server: TestServer, action: Any) -> tuple[Any, int]:
    """The action's result (run in its own transaction) and the SQL statements it ran: through SQLAlchemy's
    cursor or straight on the driver (``core.db.driver_rows``)."""
    seen = 0

    def count(*_args: Any) -> None:
        nonlocal seen
        seen += 1

    async def counted_driver_rows(*args: Any, **kwargs: Any) -> Any:
        count()
        return await driver_rows(*args, **kwargs)

    engine = server.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    repository.driver_rows = counted_driver_rows  # type: ignore[assignment]
    try:
        result = write(server, action)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        repository.driver_rows = driver_rows
    return result, seen


def test_a_warm_users_decision_runs_no_statement(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "warm")
    assess(server, tenant_id, user, at=T0, **HOME)  # first touch: loaded and cached
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=5), user_id=user.id, **HOME)
    decision, statements = statements_during(server, lambda s, a=attempt: service.decide(s, tenant_id, a))
    assert statements == 0
    assert decision.user is not None and decision.user.user_id == user.id
    profiles.clear()
    cold, statements = statements_during(server, lambda s, a=attempt: service.decide(s, tenant_id, a))
    assert statements > 0 and cold.profile is not None and decision.profile is not None
    # The same counts either way: the cache holds what the database holds.
    keys = service._wanted(decision.values)
    assert found(cold.profile, keys) == found(decision.profile, keys)
    assert (user.id, "ip", "#total") in found(cold.profile, keys)


def test_learning_reaches_the_cache_on_commit_only(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "commit")
    assess(server, tenant_id, user, at=T0, **HOME)
    before = dict(profiles.user(tenant_id, user.id, None).counts)  # type: ignore[union-attr]
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)

    async def rolled_back(session: Any) -> None:
        assessed = await service.assess(session, tenant_id, attempt, learn=False)
        await service.learn(session, tenant_id, assessed)
        await session.rollback()

    write(server, rolled_back)
    assert profiles.user(tenant_id, user.id, None).counts == before  # type: ignore[union-attr]
    write(server, lambda s: service.assess(s, tenant_id, attempt))
    after = profiles.user(tenant_id, user.id, None).counts  # type: ignore[union-attr]
    assert after["ip"]["#total"] == before["ip"]["#total"] + 1


def test_a_risk_change_in_this_process_reaches_the_next_decision(server: TestServer) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "risk")
    assess(server, tenant_id, user, at=T0, **HOME)
    assert profiles.user(tenant_id, user.id, None) is not None
    write(server, lambda s: service.confirm_compromised(s, tenant_id, SYSTEM, [user.id]))
    result = assess(server, tenant_id, user, at=T0 + timedelta(minutes=1), **HOME)
    assert result.user_risk == "high"


def test_a_risk_change_by_another_process_reaches_the_next_decision(server: TestServer) -> None:
    """On PostgreSQL a write of the user's risk row by any process is notified (migration 0011) and drops
    the cached user here at once — not after the cache's TTL. The "other process" is a plain SQL UPDATE,
    which none of this process's own invalidation hooks see."""
    if server.backend != "postgresql":
        pytest.skip("SQLite has one process; there is no cross-process notification to test")
    caches = server.app.state.db.row_caches
    assert wait_until(lambda: caches is not None and caches.listening)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "elsewhere")
    notices: list[str] = []
    follow_changes("risky_users", notices.append)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, SYSTEM, [user.id]))
    write(server, lambda s: service.dismiss(s, tenant_id, SYSTEM, [user.id]))
    # The two commits' own notices arrive asynchronously; let them land before caching the user.
    assert wait_until(lambda: notices.count(user.id) >= 2)
    assert assess(server, tenant_id, user, at=T0, **HOME).user_risk == "none"
    assert profiles.user(tenant_id, user.id, None) is not None  # cached, risk "none"

    async def raise_elsewhere(session: Any) -> None:
        await session.execute(
            text(
                "UPDATE risky_users SET risk_level = 'high', risk_state = 'confirmedCompromised' "
                "WHERE id = :id"
            ),
            {"id": user.id},
        )

    write(server, raise_elsewhere)
    assert wait_until(lambda: profiles.user(tenant_id, user.id, None) is None)
    result = assess(server, tenant_id, user, at=T0 + timedelta(minutes=1), **HOME)
    assert result.user_risk == "high"


def wait_until(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


@pytest.mark.parametrize("big_feature", [profiles.BIG_FEATURE, 0], ids=["dictionary", "columns"])
def test_a_warm_decision_on_values_never_seen_reads_nothing_and_equals_a_fresh_read(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, big_feature: int
) -> None:
    """The tenant-wide counts come from the tenant's snapshot, where a value absent has count 0: a new
    address, device and browser need no read, and the profile is the one a read of each value gives —
    with the snapshot's values in its dictionary or in sorted columns (``BIG_FEATURE`` 0)."""
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)  # tenant-wide increments written at once, not batched
    monkeypatch.setattr(profiles, "BIG_FEATURE", big_feature)
    tenant_id = server.tenant().tenant_id
    seasoned, user = make_user(server, tenant_id, "seasoned"), make_user(server, tenant_id, "fresh")
    for day in range(3):
        assess(server, tenant_id, seasoned, at=T0 + timedelta(days=day), **HOME)
    profiles.clear()
    assess(server, tenant_id, user, at=T0, **HOME)  # the user and the tenant's snapshot are loaded
    snap = profiles.snapshot(tenant_id)
    assert snap is not None and bool(snap.columns) == (big_feature == 0)
    away = {"ip_address": "2.125.160.216", "user_agent": CHROME.replace("Windows NT 10.0", "Macintosh")}
    attempts = [
        SignInAttempt(
            user.user_principal_name,
            T0 + timedelta(hours=2),
            user_id=user.id,
            device_detail={"deviceId": "never-seen"},
            **away,
        ),
        SignInAttempt(user.user_principal_name, T0 + timedelta(hours=2), user_id=user.id, **HOME),
    ]
    warm = []
    for attempt in attempts:
        decision, statements = statements_during(server, lambda s, a=attempt: service.decide(s, tenant_id, a))
        assert statements == 0 and decision.profile is not None
        warm.append(decision)
    keys = [service._wanted(decision.values) for decision in warm]
    counted = [found(decision.profile, k) for decision, k in zip(warm, keys, strict=True)]  # type: ignore[arg-type]
    assert counted[0][("*", "ip", "#total")] >= 4  # the sign-ins learned above, at least
    assert ("*", "ip", "=2.125.160.216") not in counted[0]  # never seen: 0
    assert counted[1][("*", "ip", "=81.2.69.160")] >= 4  # the home address, wherever the snapshot holds it
    # The per-value reads (a tenant too large for a snapshot) give the same counts.
    monkeypatch.setattr(profiles, "SNAPSHOT_MAX", 0)
    for attempt, decision, k, counts in zip(attempts, warm, keys, counted, strict=True):
        profiles.clear()
        read, statements = statements_during(server, lambda s, a=attempt: service.decide(s, tenant_id, a))
        assert profiles.snapshot(tenant_id) is None and statements >= 2
        assert read.profile is not None and found(read.profile, k) == counts
        # The model reads the same counts through either profile (the user is still learning, so the
        # score is computed here rather than by the decision).
        scores = [
            features.score(decision.values, p.user_counts(), p.tenant_counts())
            for p in (decision.profile, read.profile)
            if p is not None
        ]
        assert len(scores) == 2 and scores[0] == scores[1] and 0 < scores[0] < 1


@pytest.mark.parametrize("big_feature", [profiles.BIG_FEATURE, 0], ids=["dictionary", "columns"])
def test_the_snapshot_follows_what_this_process_commits_and_not_what_it_rolls_back(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, big_feature: int
) -> None:
    """After each transaction the tenant's snapshot holds the table in the database (tenant-wide increments
    written at every sign-in here, instead of batched) — with every value in its dictionary, and with every
    feature's values in sorted columns (``BIG_FEATURE`` 0), read two rows a chunk."""
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)
    monkeypatch.setattr(profiles, "BIG_FEATURE", big_feature)
    monkeypatch.setattr(repository, "_TABLE_CHUNK", 2)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "snap")
    assess(server, tenant_id, user, at=T0, **HOME)
    profiles.clear()  # read again, now that the table has rows
    assess(server, tenant_id, user, at=T0 + timedelta(seconds=30), ip_address="81.2.69.161")
    snap = profiles.snapshot(tenant_id)
    assert snap is not None and bool(snap.columns) == (big_feature == 0)
    assert_holds(snap, tenant_table(server, tenant_id))
    attempt = SignInAttempt(
        user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, ip_address="2.125.160.217"
    )

    async def rolled_back(session: Any) -> None:
        await service.assess(session, tenant_id, attempt)
        await session.rollback()

    write(server, rolled_back)
    assert_holds(snap, tenant_table(server, tenant_id))
    assert snap.get(("ip", "=2.125.160.217")) == 0
    write(server, lambda s: service.assess(s, tenant_id, attempt))
    assert_holds(snap, tenant_table(server, tenant_id))
    assert snap.get(("ip", "=2.125.160.217")) == 1


def assert_holds(snap: profiles.Snapshot | None, table: dict[tuple[str, str], int]) -> None:
    """The snapshot gives every count of the table and nothing else (a value the table has not: 0)."""
    assert snap is not None and table
    assert {key: snap.get(key) for key in table} == table
    assert [key for key, n in snap.counts.items() if n and key not in table] == []
    assert sum(len(column) for column in snap.columns.values()) <= len(table)
    assert snap.get(("ip", "=192.0.2.254")) == 0 and snap.get(("nothing", "=at all")) == 0


class Rows:
    def __init__(self) -> None:
        self.table: dict[tuple[str, str], int] = {}

    def add(self, rows: list[tuple[str, str, int]]) -> None:
        self.table.update(((feature, value), n) for feature, value, n in rows)


def tenant_table(server: TestServer, tenant_id: str) -> dict[tuple[str, str], int]:
    rows = Rows()

    async def read(session: Any) -> None:
        assert await FeatureCountRepository(session, tenant_id).tenant_table(10_000, rows)

    write(server, read)
    return rows.table


def test_a_first_touch_is_one_statement_when_the_caller_passes_the_user(server: TestServer) -> None:
    """TrustPlane's sign-in has read the user to check the password: ``decide`` reads the user's counts
    and risk in one statement and not the user again; a user of another tenant passed along is ignored."""
    tenant_id = server.tenant().tenant_id
    user, other = make_user(server, tenant_id, "given"), make_user(server, tenant_id, "other")
    assess(server, tenant_id, user, at=T0, **HOME)
    assess(server, tenant_id, other, at=T0, **HOME)
    profiles.forget_user(tenant_id, user.id)
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)
    with_user = dataclasses.replace(attempt, user=user)
    decision, statements = statements_during(server, lambda s: service.decide(s, tenant_id, with_user))
    assert statements == 1 and decision.user is not None and decision.user.user_id == user.id
    profiles.forget_user(tenant_id, user.id)
    mismatched = dataclasses.replace(attempt, user=other)  # not the user the attempt names: read again
    decision, statements = statements_during(server, lambda s: service.decide(s, tenant_id, mismatched))
    assert statements == 2 and decision.user is not None and decision.user.user_id == user.id


def test_a_decision_that_fails_while_the_users_read_is_under_way_leaves_the_session_usable(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first-touch read starts before the decision's own computation (``attempt.user`` passed): when
    that computation fails, the read is waited for before the error leaves ``decide``, so the session's
    connection is free for the caller's next statement, and the next decision reads the user as usual."""
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "ahead")
    assess(server, tenant_id, user, at=T0, **HOME)
    profiles.forget_user(tenant_id, user.id)
    attempt = SignInAttempt(
        user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, user=user, **HOME
    )
    reads = []
    real_read_ahead = service._read_ahead

    def read_ahead(*args: Any) -> Any:
        started = real_read_ahead(*args)
        reads.append(started)
        return started

    def broken(*_args: Any, **_kwargs: Any) -> dict[str, str]:
        raise RuntimeError("feature extraction failed")

    monkeypatch.setattr(service, "_read_ahead", read_ahead)
    monkeypatch.setattr(features, "feature_values", broken)

    async def fail_then_query(session: Any) -> int:
        with pytest.raises(RuntimeError, match="feature extraction failed"):
            await service.decide(session, tenant_id, attempt)
        return int((await session.execute(text("SELECT 1"))).scalar_one())

    assert write(server, fail_then_query) == 1
    assert len(reads) == 1 and reads[0] is not None and reads[0].task.done()
    monkeypatch.undo()
    decision = write(server, lambda s: service.decide(s, tenant_id, attempt))
    assert decision.user is not None and decision.user.counts["ip"]["#total"] == 1


def test_a_first_touch_in_a_transaction_that_changed_the_users_risk_reads_that_risk(
    server: TestServer,
) -> None:
    """A batch (ingestion) can confirm a user compromised and then decide on the user's next sign-in in the
    same transaction: the first touch's read sees the uncommitted risk (on SQLite it then goes through the
    session's connection, not the read-only one)."""
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "same-transaction")
    attempt = SignInAttempt(user.user_principal_name, T0, user_id=user.id, **HOME)

    async def both(session: Any) -> Any:
        await service.confirm_compromised(session, tenant_id, SYSTEM, [user.id])
        profiles.clear()
        decision = await service.decide(session, tenant_id, attempt)
        await session.rollback()
        return decision

    decision = write(server, both)
    assert decision.user is not None and decision.user.risk_level == "high"
    profiles.clear()
    after = write(server, lambda s: service.decide(s, tenant_id, attempt))
    assert after.user is not None and after.user.risk_level == "none"  # rolled back


def test_a_batch_prefetch_loads_each_user_as_a_first_touch_would(server: TestServer) -> None:
    """``prefetch`` (ingestion, before a batch's first write) reads the batch's users together — by id or
    by userPrincipalName, whatever its case — and caches what each one's first touch would: then no event's
    decision runs a statement, and the counts and risk are the ones a first touch reads."""
    tenant_id = server.tenant().tenant_id
    users = [make_user(server, tenant_id, f"batch{i}") for i in range(3)]
    for i, user in enumerate(users):
        for day in range(i + 1):
            assess(server, tenant_id, user, at=T0 + timedelta(days=day), **HOME)
    write(server, lambda s: service.confirm_compromised(s, tenant_id, SYSTEM, [users[2].id]))
    attempts = [
        SignInAttempt(users[0].user_principal_name, T0 + timedelta(days=9), user_id=users[0].id, **HOME),
        SignInAttempt(users[1].user_principal_name.upper(), T0 + timedelta(days=9), **HOME),
        SignInAttempt(users[2].user_principal_name, T0 + timedelta(days=9), user_id=users[2].id, **HOME),
        SignInAttempt("nobody@batch.example", T0 + timedelta(days=9), **HOME),
    ]
    first_touch = []
    for attempt in attempts[:3]:
        profiles.clear()
        first_touch.append(write(server, lambda s, a=attempt: service.decide(s, tenant_id, a)))
    profiles.clear()
    assert write(server, lambda s: service.prefetch(s, tenant_id, attempts)) == 3
    assert write(server, lambda s: service.prefetch(s, tenant_id, attempts)) == 0  # all cached now
    for attempt, fresh in zip(attempts, first_touch, strict=False):
        decision, statements = statements_during(server, lambda s, a=attempt: service.decide(s, tenant_id, a))
        assert statements == 0
        assert decision.user is not None and fresh.user is not None
        assert decision.user.counts == fresh.user.counts and decision.user.counts
        assert decision.user.first_seen == fresh.user.first_seen
        assert (decision.user.risk_level, decision.risk_level) == (fresh.user.risk_level, fresh.risk_level)
    assert [d.user.risk_level for d in first_touch if d.user] == ["none", "none", "high"]


def test_a_tenant_table_over_the_limit_is_refused_and_one_at_the_limit_is_read_whole(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)
    monkeypatch.setattr(repository, "_TABLE_CHUNK", 3)
    tenant_id = server.tenant().tenant_id
    assess(server, tenant_id, make_user(server, tenant_id, "limit"), at=T0, **HOME)
    table = tenant_table(server, tenant_id)
    size = len(table)
    assert size > 3

    def read(limit: int) -> tuple[bool, dict[tuple[str, str], int]]:
        rows = Rows()

        async def run(session: Any) -> bool:
            return await FeatureCountRepository(session, tenant_id).tenant_table(limit, rows)

        return write(server, run), rows.table

    assert read(size) == (True, table)
    fits, partial = read(size - 1)
    assert not fits and partial == {}  # refused before any row was read


def add_tenant_row(server: TestServer, tenant_id: str, value: str, count: int) -> None:
    """A tenant-wide count written behind this process's back (as another process's flush would)."""

    async def insert(session: Any) -> None:
        await session.execute(
            text(
                "INSERT INTO protection_feature_counts "
                "(tenant_id, subject, feature, value, count, first_seen_at) "
                "VALUES (:t, '*', 'ip', :v, :n, :at)"
            ),
            {"t": tenant_id, "v": value, "n": count, "at": T0.replace(tzinfo=None)},
        )

    write(server, insert)


def test_a_stale_snapshot_serves_while_the_table_is_read_again_in_the_background(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "stale")
    assess(server, tenant_id, user, at=T0, **HOME)  # the first read: in the decision
    first = profiles.snapshot(tenant_id)
    assert first is not None
    add_tenant_row(server, tenant_id, "=198.51.100.7", 5)
    monkeypatch.setattr(profiles, "SNAPSHOT_TTL", 0.0)  # due at every decision from now on
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)
    decision = write(server, lambda s: service.decide(s, tenant_id, attempt))
    assert decision.profile is not None and decision.profile.tenant is first.counts  # the stale one served
    assert wait_until(lambda: profiles.snapshot(tenant_id) is not first)
    fresh = profiles.snapshot(tenant_id)
    assert (
        fresh is not None
        and fresh.get(("ip", "=198.51.100.7")) == 5
        and first.get(("ip", "=198.51.100.7")) == 0
    )
    assert_holds(fresh, tenant_table(server, tenant_id))


def test_a_failed_background_read_keeps_the_stale_snapshot_and_is_tried_again(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "retry")
    assess(server, tenant_id, user, at=T0, **HOME)
    first = profiles.snapshot(tenant_id)
    reads: list[int] = []
    real = FeatureCountRepository.tenant_table

    async def failing(self: Any, limit: int, into: Any) -> bool:
        reads.append(limit)
        if len(reads) == 1:
            raise RuntimeError("the database went away")
        return await real(self, limit, into)

    monkeypatch.setattr(FeatureCountRepository, "tenant_table", failing)
    monkeypatch.setattr(profiles, "SNAPSHOT_TTL", 0.0)
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)
    write(server, lambda s: service.decide(s, tenant_id, attempt))
    assert wait_until(lambda: len(reads) == 1 and tenant_id not in profiles._loads)
    assert profiles.snapshot(tenant_id) is first  # still serving
    write(server, lambda s: service.decide(s, tenant_id, attempt))
    assert wait_until(lambda: profiles.snapshot(tenant_id) is not first)
    assert len(reads) >= 2


def test_increments_committed_while_the_table_is_read_are_kept(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sign-in that commits tenant-wide counts while the table is being read: the snapshot stored counts
    them, whether the read saw their rows or not (the rows here are read first, then the increments land)."""
    monkeypatch.setattr(cache, "FLUSH_SECONDS", 0.0)
    tenant_id = server.tenant().tenant_id
    user = make_user(server, tenant_id, "during")
    assess(server, tenant_id, user, at=T0, **HOME)
    profiles.clear()
    real = FeatureCountRepository.tenant_table
    other = SignInAttempt(
        user.user_principal_name, T0 + timedelta(minutes=2), user_id=user.id, ip_address="2.125.160.219"
    )

    async def read_then_learn(self: Any, limit: int, into: Any) -> bool:
        fits = await real(self, limit, into)
        # another sign-in of this process commits while the snapshot is not yet stored
        async with server.db.session() as session:
            await service.assess(session, tenant_id, other)
        return fits

    monkeypatch.setattr(FeatureCountRepository, "tenant_table", read_then_learn)
    attempt = SignInAttempt(user.user_principal_name, T0 + timedelta(minutes=1), user_id=user.id, **HOME)
    write(server, lambda s: service.decide(s, tenant_id, attempt))  # the first read, in the decision
    monkeypatch.setattr(FeatureCountRepository, "tenant_table", real)
    snap = profiles.snapshot(tenant_id)
    assert snap is not None and snap.get(("ip", "=2.125.160.219")) == 1
    assert_holds(snap, tenant_table(server, tenant_id))
