"""Seed a benchmark directory on PostgreSQL: a fresh database (random suffix), TrustPlane's migrations and
bootstrap, then a bulk load of users and groups nested ``depth`` levels deep, written as the directory
services write them (same columns, defaults, JSON lists, directory_values rows and membership edges, all
tenant-scoped), through ``COPY``. Ends with ``ANALYZE``.

The shape is a forest: roots at level 1, every group at level k+1 has one parent at level k, and every user is
a direct member of exactly one leaf group (level ``depth``), so each user belongs to ``depth`` groups
transitively. The bulk path skips the outbox (no events, audit entries or jobs for the seeded rows).

    python benchmarks/seed_directory.py --users 100000 --groups 10000 [--keep]

Without ``--keep`` the database is dropped again after the HTTP sanity check (useful to time the seed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from trustplane.auth.keys import KeyStore
from trustplane.bootstrap import ensure_ready
from trustplane.core.db import Database
from trustplane.core.migrate import upgrade

PG_ADMIN_URL = os.environ.get("TRUSTPLANE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

FIRST = "Ada Alan Barbara Claude Dennis Edsger Frances Grace Hedy Ivan John Katherine Linus Margaret".split()
LAST = "Lovelace Turing Liskov Shannon Ritchie Dijkstra Allen Hopper Lamarr Backus Johnson Hamilton".split()
DEPARTMENTS = ("Engineering", "Security", "Sales", "Finance", "Support", "Legal", "Operations")
TITLES = ("Engineer", "Analyst", "Manager", "Director", "Specialist")
# Share of groups at each level (root first); the rest of the arithmetic makes the total exact.
LEVEL_WEIGHTS = (0.002, 0.018, 0.08, 0.2, 0.7)


@dataclass
class SeededDirectory:
    database: str
    url: str  # SQLAlchemy async URL (postgresql+asyncpg://…)
    tenant_id: str
    domain: str
    client_id: str
    client_secret: str
    users: int
    groups: int
    depth: int
    seconds: float
    # A sample of users for the load generator: (id, userPrincipalName), in random order.
    sample: list[tuple[str, str]] = field(default_factory=list)
    # One user and the ids of its ancestor groups, for the sanity check.
    probe_user: str = ""
    probe_groups: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _admin_dsn() -> str:
    return PG_ADMIN_URL


def _db_dsn(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def create_database() -> str:
    name = f"trustplane_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def level_sizes(groups: int, depth: int) -> list[int]:
    """How many groups sit at each level; every level has at least as many groups as the one above."""
    if groups < depth:
        raise ValueError("need at least one group per level")
    weights = LEVEL_WEIGHTS if depth == len(LEVEL_WEIGHTS) else tuple(2**k for k in range(depth))
    total_w = sum(weights)
    sizes = [max(1, int(groups * w / total_w)) for w in weights]
    sizes[-1] += groups - sum(sizes)
    for k in range(1, depth):
        if sizes[k] < sizes[k - 1]:
            raise ValueError(f"level sizes {sizes} are not non-decreasing; choose more groups")
    return sizes


async def _bulk_load(
    dsn: str, tenant_id: str, domain: str, n_users: int, n_groups: int, depth: int, seed: int
) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, str]]:
    """Returns (users as (id, upn), user -> leaf group, group -> parent group)."""
    rng = random.Random(seed)
    base_time = datetime.now(UTC) - timedelta(days=30)
    now = datetime.now(UTC)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    # ---- groups, level by level
    sizes = level_sizes(n_groups, depth)
    group_rows: list[tuple[Any, ...]] = []
    value_rows: list[tuple[Any, ...]] = []
    member_rows: list[tuple[Any, ...]] = []
    parent_of: dict[str, str] = {}
    levels: list[list[str]] = []
    n = 0
    for level, size in enumerate(sizes, start=1):
        ids: list[str] = []
        for i in range(size):
            gid = uid()
            ids.append(gid)
            created = base_time + timedelta(milliseconds=n)
            n += 1
            unified = level == depth and i % 4 == 0
            nick = f"l{level}-g{i}"
            group_types = ["Unified"] if unified else []
            group_rows.append(
                (
                    gid,
                    tenant_id,
                    f"Level {level} group {i}",  # display_name
                    f"{DEPARTMENTS[i % len(DEPARTMENTS)]} level {level}",  # description
                    f"{nick}@{domain}" if unified else None,  # mail
                    unified,  # mail_enabled
                    nick,  # mail_nickname
                    True,  # security_enabled
                    "Private" if unified else None,  # visibility
                    None,  # classification
                    None,  # is_assignable_to_role
                    json.dumps(group_types),
                    json.dumps([]),  # proxy_addresses (read-only on the wire, written empty)
                    created,
                    created,
                )
            )
            for value in group_types:
                value_rows.append((uid(), tenant_id, gid, "group_types", value))
            if levels:
                parent = rng.choice(levels[-1])
                parent_of[gid] = parent
                member_rows.append((parent, gid, "group", tenant_id, created))
        levels.append(ids)
    leaves = levels[-1]

    # ---- users, each a direct member of one leaf group
    user_rows: list[tuple[Any, ...]] = []
    users: list[tuple[str, str]] = []
    leaf_of: dict[str, str] = {}
    for i in range(n_users):
        user_id = uid()
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        alias = f"{first}.{last}.{i}".lower()
        upn = f"{alias}@{domain}"
        created = base_time + timedelta(milliseconds=n + i)
        phones = [f"+1 555 {i % 10000:04d}"] if i % 2 == 0 else []
        other_mails = [f"{alias}@example.org"] if i % 5 == 0 else []
        user_rows.append(
            (
                user_id,
                tenant_id,
                upn,
                f"{first} {last}",  # display_name
                first,  # given_name
                last,  # surname
                upn,  # mail
                alias.replace(".", "-")[:64],  # mail_nickname
                i % 20 != 0,  # account_enabled
                TITLES[i % len(TITLES)],  # job_title
                DEPARTMENTS[i % len(DEPARTMENTS)],  # department
                None,  # office_location
                None,  # mobile_phone
                None,  # company_name
                None,  # employee_id
                None,  # employee_type
                None,  # city
                None,  # state
                None,  # country
                None,  # postal_code
                None,  # street_address
                "US",  # usage_location
                None,  # preferred_language
                "Member",  # user_type
                None,  # on_premises_immutable_id
                json.dumps(phones),
                json.dumps(other_mails),
                json.dumps([]),  # proxy_addresses
                None,  # password_hash
                False,  # force_change_password
                None,  # password_changed_at
                created,
                created,
            )
        )
        for value in phones:
            value_rows.append((uid(), tenant_id, user_id, "business_phones", value))
        for value in other_mails:
            value_rows.append((uid(), tenant_id, user_id, "other_mails", value))
        leaf = leaves[i % len(leaves)]
        leaf_of[user_id] = leaf
        member_rows.append((leaf, user_id, "user", tenant_id, now))
        users.append((user_id, upn))

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "groups",
                records=group_rows,
                columns=[
                    "id",
                    "tenant_id",
                    "display_name",
                    "description",
                    "mail",
                    "mail_enabled",
                    "mail_nickname",
                    "security_enabled",
                    "visibility",
                    "classification",
                    "is_assignable_to_role",
                    "group_types",
                    "proxy_addresses",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.copy_records_to_table(
                "users",
                records=user_rows,
                columns=[
                    "id",
                    "tenant_id",
                    "user_principal_name",
                    "display_name",
                    "given_name",
                    "surname",
                    "mail",
                    "mail_nickname",
                    "account_enabled",
                    "job_title",
                    "department",
                    "office_location",
                    "mobile_phone",
                    "company_name",
                    "employee_id",
                    "employee_type",
                    "city",
                    "state",
                    "country",
                    "postal_code",
                    "street_address",
                    "usage_location",
                    "preferred_language",
                    "user_type",
                    "on_premises_immutable_id",
                    "business_phones",
                    "other_mails",
                    "proxy_addresses",
                    "password_hash",
                    "force_change_password",
                    "password_changed_at",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.copy_records_to_table(
                "memberships",
                records=member_rows,
                columns=["group_id", "member_id", "member_type", "tenant_id", "created_at"],
            )
            await conn.copy_records_to_table(
                "directory_values",
                records=value_rows,
                columns=["id", "tenant_id", "object_id", "attr", "value"],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return users, leaf_of, parent_of


async def seed(
    *, users: int = 100_000, groups: int = 10_000, depth: int = 5, sample: int = 20_000, seed: int = 42
) -> SeededDirectory:
    """A new database with the directory loaded; the caller drops it (``drop_database``)."""
    started = time.perf_counter()
    name = await create_database()
    url = _db_dsn(name).replace("postgresql://", "postgresql+asyncpg://")
    try:
        db = Database(url)
        try:
            await upgrade(db.engine)
            admin = await ensure_ready(db, KeyStore(3600))
        finally:
            await db.dispose()
        if admin is None:
            raise RuntimeError("bootstrap did not create the admin app on a new database")
        conn = await asyncpg.connect(_db_dsn(name))
        try:
            domain = await conn.fetchval("SELECT domain FROM tenants WHERE id = $1", admin.tenant_id)
        finally:
            await conn.close()
        all_users, leaf_of, parent_of = await _bulk_load(
            _db_dsn(name), admin.tenant_id, domain, users, groups, depth, seed
        )
    except BaseException:
        await drop_database(name)
        raise
    rng = random.Random(seed + 1)
    picked = rng.sample(all_users, min(sample, len(all_users)))
    probe = picked[0][0]
    chain: list[str] = []
    group = leaf_of[probe]
    while True:
        chain.append(group)
        if group not in parent_of:
            break
        group = parent_of[group]
    return SeededDirectory(
        database=name,
        url=url,
        tenant_id=admin.tenant_id,
        domain=domain,
        client_id=admin.client_id,
        client_secret=admin.client_secret,
        users=users,
        groups=groups,
        depth=depth,
        seconds=time.perf_counter() - started,
        sample=picked,
        probe_user=probe,
        probe_groups=sorted(chain),
    )


def get_token(base_url: str, seeded: SeededDirectory) -> str:
    response = httpx.post(
        f"{base_url}/{seeded.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": seeded.client_id,
            "client_secret": seeded.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def verify(base_url: str, token: str, seeded: SeededDirectory) -> None:
    """Through the real HTTP API: the probe user reads back, its UPN filter finds it, and getMemberGroups
    returns exactly its ``depth`` ancestor groups. Raises on any mismatch (the bulk rows are malformed)."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        user_id = seeded.probe_user
        upn = dict(seeded.sample)[user_id]
        got = c.get(f"/v1.0/users/{user_id}")
        if got.status_code != 200 or got.json().get("userPrincipalName") != upn:
            raise RuntimeError(f"seed check: GET user {user_id} -> {got.status_code} {got.text[:300]}")
        found = c.get("/v1.0/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        values = found.json().get("value", []) if found.status_code == 200 else []
        if [v.get("id") for v in values] != [user_id]:
            raise RuntimeError(f"seed check: $filter on UPN -> {found.status_code} {found.text[:300]}")
        groups = c.post(f"/v1.0/users/{user_id}/getMemberGroups", json={"securityEnabledOnly": False})
        ids = sorted(groups.json().get("value", [])) if groups.status_code == 200 else None
        if ids != seeded.probe_groups or len(seeded.probe_groups) != seeded.depth:
            raise RuntimeError(
                f"seed check: getMemberGroups -> {groups.status_code} {groups.text[:300]}; "
                f"expected {seeded.probe_groups}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args()
    seeded = asyncio.run(seed(users=args.users, groups=args.groups, depth=args.depth))
    print(
        f"seeded {seeded.users} users, {seeded.groups} groups ({seeded.depth} deep) "
        f"into {seeded.database} in {seeded.seconds:.1f} s"
    )
    try:
        from bench_directory import TrustPlaneServer  # the same server the benchmark runs

        with TrustPlaneServer(seeded.url, cpu=None) as server:
            verify(server.url, get_token(server.url, seeded), seeded)
        print(f"sanity check through the HTTP API: ok (getMemberGroups returns {seeded.depth} ancestors)")
    finally:
        if args.keep:
            print(f"kept: TRUSTPLANE_DATABASE_URL={seeded.url}")
            print(f"      client id {seeded.client_id}, secret {seeded.client_secret}")
        else:
            asyncio.run(drop_database(seeded.database))


if __name__ == "__main__":
    main()
