"""Conditional access decision latency, in-process, beside cedarpy evaluating an equivalent policy set in the
same run (the yardstick every figure is printed against).

1. A directory is seeded on PostgreSQL with ``seed_directory.py`` (default 100k users in 10k groups nested
   5 deep). Group resolution — ``directory.service.member_group_ids``, the recursive CTE a sign-in runs — is
   timed on its own over a sample of users; the engine then decides with those groups pre-resolved.
2. For each policy count (default 10, 100, 1,000 enabled policies) a policy set is generated from the seeded
   groups: a few tenant-wide baseline policies (block legacy authentication, block high user risk, MFA for
   medium+ sign-in risk, block listed countries) and the rest group- and app-targeted MFA / compliant-device
   / block policies with group exclusions, platform, client-app, risk and country conditions. The same set is
   translated to Cedar (one ``forbid`` per policy, "unless its controls are satisfied", plus a baseline
   ``permit``); the user entities carry their transitive groups as parents, so both engines start from the
   same resolved groups.
3. The same requests go to both engines; every decision is compared (allowed ⇔ TrustPlane's outcome is
   ``grant``) and the run fails on any disagreement. Latency: each call timed with ``perf_counter_ns``.

    python benchmarks/bench_access.py [--quick] [--policies 10,100,1000] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_directory import SeededDirectory, drop_database, seed

from trustplane.access.compiler import PolicyIndex, compile_index
from trustplane.access.evaluator import SignInContext, evaluate
from trustplane.access.schemas import normalize_policy
from trustplane.core.db import Database
from trustplane.directory.service import member_group_ids

TARGET_P99_US = 50.0
APPS = [str(uuid.UUID(int=0xA000 + i)) for i in range(50)]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "KP", "IR", "NG"]
BLOCKED_COUNTRIES = ["KP", "IR"]
PLATFORMS = ["windows", "macOS", "iOS", "android", "linux"]
CLIENT_TYPES = ["browser"] * 8 + ["mobileAppsAndDesktopClients"] * 3 + ["exchangeActiveSync", "other"]
RISKS = ["none"] * 12 + ["low"] * 3 + ["medium", "high"]
COUNTRY_LOCATION = "7d3f6a52-0000-4000-8000-00000000c0de"


@dataclass
class Request:
    ctx: SignInContext
    cedar: dict[str, Any]


def policy_set(n: int, groups: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """``n`` enabled policies in Graph form."""
    every = {"includeUsers": ["All"], "excludeGroups": [groups[0]]}  # groups[0]: the break-glass group
    baseline = [
        {
            "conditions": {
                "users": every,
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["exchangeActiveSync", "other"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
        {
            "conditions": {
                "users": every,
                "applications": {"includeApplications": ["All"]},
                "userRiskLevels": ["high"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
        {
            "conditions": {
                "users": every,
                "applications": {"includeApplications": ["All"]},
                "signInRiskLevels": ["high", "medium"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
        {
            "conditions": {
                "users": every,
                "applications": {"includeApplications": ["All"]},
                "locations": {"includeLocations": [COUNTRY_LOCATION]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        },
    ]
    out = baseline[: min(n, len(baseline))]
    while len(out) < n:
        conditions: dict[str, Any] = {
            "users": {"includeGroups": rng.sample(groups, 2), "excludeGroups": rng.sample(groups, 1)},
            "applications": {"includeApplications": rng.sample(APPS, rng.choice((1, 2, 3)))},
        }
        roll = rng.random()
        if roll < 0.3:
            conditions["platforms"] = {"includePlatforms": rng.sample(PLATFORMS, 2)}
        elif roll < 0.5:
            conditions["clientAppTypes"] = ["browser", "mobileAppsAndDesktopClients"]
        elif roll < 0.6:
            conditions["signInRiskLevels"] = ["low", "medium", "high"]
        grant = rng.choice(
            [
                {"operator": "OR", "builtInControls": ["mfa"]},
                {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]},
                {"operator": "AND", "builtInControls": ["mfa", "compliantDevice"]},
                {"operator": "OR", "builtInControls": ["block"]},
            ]
        )
        out.append({"conditions": conditions, "grantControls": grant})
    return [
        normalize_policy({"displayName": f"p{i}", "state": "enabled", **body}) for i, body in enumerate(out)
    ]


def _cedar_set(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def to_cedar(policies: list[dict[str, Any]]) -> str:
    """The same policy set in Cedar: a policy that would block (or whose controls are unmet) forbids."""
    lines = ["permit (principal, action, resource);"]
    for p in policies:
        cond, grant = p["conditions"], p["grantControls"]
        users, apps = cond["users"], cond["applications"]
        when: list[str] = []
        if "All" in users["includeUsers"]:
            principal = "principal"
        else:
            principal = "principal"
            when.append("(" + " || ".join(f'principal in Group::"{g}"' for g in users["includeGroups"]) + ")")
        unless = [f'principal in Group::"{g}"' for g in users["excludeGroups"]]
        if "All" not in apps["includeApplications"]:
            when.append(f"{_cedar_set(apps['includeApplications'])}.contains(resource.id)")
        if cond["clientAppTypes"]:
            when.append(f"{_cedar_set(cond['clientAppTypes'])}.contains(context.clientAppType)")
        if cond["platforms"]:
            when.append(f"{_cedar_set(cond['platforms']['includePlatforms'])}.contains(context.platform)")
        if cond["signInRiskLevels"]:
            when.append(f"{_cedar_set(cond['signInRiskLevels'])}.contains(context.signInRisk)")
        if cond["userRiskLevels"]:
            when.append(f"{_cedar_set(cond['userRiskLevels'])}.contains(context.userRisk)")
        if cond["locations"]:
            when.append(f"{_cedar_set(BLOCKED_COUNTRIES)}.contains(context.country)")
        controls = grant["builtInControls"]
        if "block" not in controls:
            join = " && " if grant["operator"] == "AND" else " || "
            unless.append("(" + join.join(f"context.{c}" for c in controls) + ")")
        text = f"forbid ({principal}, action, resource)"
        if when:
            text += " when { " + " && ".join(when) + " }"
        if unless:
            text += " unless { " + " || ".join(unless) + " }"
        lines.append(text + ";")
    return "\n".join(lines)


def make_requests(n: int, users: list[tuple[str, frozenset[str]]], rng: random.Random) -> list[Request]:
    out = []
    for _ in range(n):
        user_id, groups = rng.choice(users)
        app = rng.choice(APPS)
        client = rng.choice(CLIENT_TYPES)
        platform = rng.choice(PLATFORMS)
        country = rng.choice(COUNTRIES)
        sign_in_risk, user_risk = rng.choice(RISKS), rng.choice(RISKS)
        mfa, compliant = rng.random() < 0.5, rng.random() < 0.5
        satisfied = frozenset(c for c, ok in (("mfa", mfa), ("compliantDevice", compliant)) if ok)
        ctx = SignInContext(
            user_id=user_id,
            group_ids=groups,
            app_id=app,
            client_app_type=client,
            platform=platform,
            country=country,
            sign_in_risk=sign_in_risk,
            user_risk=user_risk,
            satisfied_controls=satisfied,
        )
        cedar = {
            "principal": {"type": "User", "id": user_id},
            "action": {"type": "Action", "id": "signIn"},
            "resource": {"type": "App", "id": app},
            "context": {
                "clientAppType": client,
                "platform": platform,
                "country": country,
                "signInRisk": sign_in_risk,
                "userRisk": user_risk,
                "mfa": mfa,
                "compliantDevice": compliant,
            },
        }
        out.append(Request(ctx, cedar))
    return out


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1000, p99 / 1000, statistics.fmean(ordered) / 1000


def run_engine(index: PolicyIndex, requests: list[Request]) -> tuple[list[int], list[bool], float]:
    for r in requests[:500]:
        evaluate(index, r.ctx)  # warm-up
    times, allowed, evaluated = [], [], 0
    clock = time.perf_counter_ns
    for r in requests:
        t0 = clock()
        decision = evaluate(index, r.ctx)
        times.append(clock() - t0)
        allowed.append(decision.outcome == "grant")
        evaluated += decision.evaluated
    return times, allowed, evaluated / len(requests)


def run_cedar(
    policies: cedarpy.PolicySet, entities: cedarpy.Entities, requests: list[Request]
) -> tuple[list[int], list[bool]]:
    for r in requests[:200]:
        cedarpy.is_authorized(r.cedar, policies, entities)
    times, allowed = [], []
    clock = time.perf_counter_ns
    for r in requests:
        t0 = clock()
        result = cedarpy.is_authorized(r.cedar, policies, entities)
        times.append(clock() - t0)
        allowed.append(result.decision == cedarpy.Decision.Allow)
    return times, allowed


async def resolve_groups(
    seeded: SeededDirectory, n: int
) -> tuple[list[tuple[str, frozenset[str]]], list[int]]:
    db = Database(seeded.url, pool_size=2)
    users: list[tuple[str, frozenset[str]]] = []
    times: list[int] = []
    try:
        async with db.read_session() as session:
            for user_id, _ in seeded.sample[:n]:
                t0 = time.perf_counter_ns()
                groups = await member_group_ids(session, seeded.tenant_id, user_id)
                times.append(time.perf_counter_ns() - t0)
                users.append((user_id, frozenset(groups)))
    finally:
        await db.dispose()
    return users, times


def row(*cells: object) -> str:
    widths = (8, 11, 10, 9, 12, 11, 9, 9, 13)
    return " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--policies", default="10,100,1000")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--resolve", type=int, default=2_000, help="users whose groups are resolved (timed)")
    args = parser.parse_args()
    if args.quick:
        args.policies, args.requests, args.users, args.groups, args.resolve = "10,100", 2_000, 5_000, 500, 300
    sizes = [int(s) for s in args.policies.split(",")]
    rng = random.Random(7)
    print("load average (1/5/15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    seeded = asyncio.run(seed(users=args.users, groups=args.groups, sample=args.resolve))
    try:
        print(
            f"directory: {seeded.users} users, {seeded.groups} groups {seeded.depth} deep"
            f" (seeded in {seeded.seconds:.0f} s)"
        )
        users, resolve_ns = asyncio.run(resolve_groups(seeded, args.resolve))
    finally:
        asyncio.run(drop_database(seeded.database))
    med, p99, _ = percentiles(resolve_ns)
    print(
        f"group resolution, measured apart from the decision (member_group_ids on PostgreSQL, "
        f"{len(users)} users): median {med:.0f} us, p99 {p99:.0f} us"
    )
    groups = sorted({g for _, gs in users for g in gs})
    entities = cedarpy.Entities.from_json_str(
        json.dumps(
            [
                {
                    "uid": {"type": "User", "id": u},
                    "attrs": {},
                    "parents": [{"type": "Group", "id": g} for g in gs],
                }
                for u, gs in users
            ]
            + [{"uid": {"type": "App", "id": a}, "attrs": {"id": a}, "parents": []} for a in APPS]
        )
    )
    requests = make_requests(args.requests, users, rng)
    gc.freeze()  # the long-lived set-up objects leave the collector's generations, as in a warm server
    print(f"\ndecision latency in us, {len(requests)} requests per size (pre-resolved groups)")
    print(
        row(
            "policies",
            "ours p50",
            "ours p99",
            "looked at",
            "cedarpy p50",
            "cedar p99",
            "p50 ratio",
            "p99 ratio",
            "agree",
        )
    )
    allowed: list[bool] = []
    for n in sizes:
        bodies = policy_set(n, groups, rng)
        country = {
            "@odata.type": "#microsoft.graph.countryNamedLocation",
            "countriesAndRegions": BLOCKED_COUNTRIES,
        }
        index = compile_index(
            1, [(str(uuid.UUID(int=i + 1)), b) for i, b in enumerate(bodies)], [(COUNTRY_LOCATION, country)]
        )
        cedar_policies = cedarpy.PolicySet.from_str(to_cedar(bodies))
        ours_ns, allowed, looked_at = run_engine(index, requests)
        cedar_ns, cedar_allowed = run_cedar(cedar_policies, entities, requests)
        agree = sum(a == b for a, b in zip(allowed, cedar_allowed, strict=True))
        o_med, o_p99, _ = percentiles(ours_ns)
        c_med, c_p99, _ = percentiles(cedar_ns)
        print(
            row(
                n,
                f"{o_med:.2f}",
                f"{o_p99:.2f}",
                f"{looked_at:.1f}",
                f"{c_med:.1f}",
                f"{c_p99:.1f}",
                f"{c_med / o_med:.1f}x",
                f"{c_p99 / o_p99:.1f}x",
                f"{agree}/{len(requests)}",
            )
        )
        if agree != len(requests):
            raise SystemExit(f"the engines disagree on {len(requests) - agree} decisions at {n} policies")
        if n >= 1000:
            verdict = "met" if o_p99 <= TARGET_P99_US else "NOT met"
            print(f"target p99 <= {TARGET_P99_US:.0f} us at {n} policies: {verdict} ({o_p99:.2f} us)")
    print(
        f"allow rate at the last size {sum(allowed) / len(allowed):.2f}; "
        "ratio = cedarpy / TrustPlane (the yardstick over ours: higher is better)"
    )
    print("load average (1/5/15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
