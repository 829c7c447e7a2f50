"""Identity protection: a sign-in simulator, the sign-in risk score's quality per attacker kind, and the
cost of ``protection.service.assess``.

The simulator generates legitimate users with habits — a home country and city, a home ISP and a mobile
carrier (ASNs of that country), one to three home addresses, a mobile address that changes within the
carrier (now and then in another city), one to three devices (browser family, OS, and the identifier the
identity provider sees: a registered device or a persistent browser cookie) whose browser versions move
forward, an identifier that is reset now and then (2% of sign-ins: cookies cleared, a new profile), a new
device bought during the period (40% of users), sign-ins mostly in working hours of their own time zone
(85%), a different in-country network in about 5% of sign-ins (30% of those in another city), now and then
a trip abroad — and three kinds of attacker against random victims (after Wiefling et al.), each on their
own machine and at any hour: *naive* (a random address anywhere, a random popular user agent), *VPN*
(addresses of anonymising services, which IP intelligence flags) and *targeted* (an address in the victim's
country, in a city drawn as people live, and the victim's browser family and OS at the current release);
beyond the issue's three, a stress case, *local*: a targeted attacker who also knows the victim's city and
signs in during the victim's working hours (only the new device and the address give it away).
These habits are ours, not measured from real logins. Sign-ins of all users are interleaved in time order;
each is scored against the user's history as it stood then, with the paper's model (Freeman et al.: IP and
user-agent groups) and with the full model ``assess`` uses (plus device, location and hour), both on the
same counts; the risk score is the model's score, raised to the medium level's floor when the
anonymizedIPAddress detection fires; legitimate sign-ins are learned, attacks are not. The model has no
fitted parameters; seed 7 is the population it was built against, other seeds are held out.

Figures, each beside a yardstick measured in the same run:
* ROC AUC of the sign-in risk score per attacker kind, beside a naive rule's AUC ("the address or the user
  agent was never seen for this user": 1 or 0);
* the share of each attacker kind caught at the threshold that challenges at most 5% of legitimate sign-ins
  (Wiefling et al. report > 99% of targeted attackers blocked at that kind of rate, on real logins), and at
  the detectors' own medium level (absolute, or rarer than 1 in 100 of the tenant's scored sign-ins);
* the mean log10 likelihood ratio of each feature group per kind (which signals separate which attacker);
* what ``assess`` computes (IP intelligence, features, model, every detector) without the database, beside
  one IP-intelligence lookup;
* ``assess`` latency (p50 / p99 of the call, and of the whole transaction with its commit; one transaction
  per sign-in, SQLite in a temporary directory by default, PostgreSQL with ``--postgres``) beside reading
  one user by id in its own transaction and beside the smallest durable write (one event row committed);
  200 users learned through ``assess`` by default, or with ``--tenant-users N`` a tenant of N users whose
  history (~100 sign-ins each: 10,000 users make the issue's million) is learned in memory and loaded in bulk.

    python benchmarks/bench_protection.py [--quick] [--users 10000] [--sign-ins 1000000] [--attacks 30000]
        [--seed 7] [--sim-only | --timing-only] [--tenant-users 10000] [--postgres postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import math
import os
import random
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trustplane.protection import features
from trustplane.protection.detectors.base import LEVELS
from trustplane.protection.detectors.unfamiliar import THRESHOLDS, level_of

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 180
MEDIUM_FLOOR = dict(THRESHOLDS)["medium"]
BROWSERS = {
    "Chrome": (
        "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        120,
    ),
    "Firefox": ("Mozilla/5.0 ({os}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0", 121),
    "Edge": (
        "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 "
        "Edg/{v}.0.0.0",
        120,
    ),
    "Safari": (
        "Mozilla/5.0 ({os}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v}.0 Safari/605.1.15",
        17,
    ),
}
OSES = {
    "Windows": "Windows NT 10.0; Win64; x64",
    "macOS": "Macintosh; Intel Mac OS X 14_5",
    "Linux": "X11; Linux x86_64",
    "Android": "Linux; Android 14; Pixel 8",
    "iOS": "iPhone; CPU iPhone OS 17_5 like Mac OS X",
}
PAIRS = [
    ("Chrome", "Windows", 30),
    ("Edge", "Windows", 12),
    ("Firefox", "Windows", 6),
    ("Chrome", "macOS", 8),
    ("Safari", "macOS", 8),
    ("Firefox", "Linux", 3),
    ("Chrome", "Android", 15),
    ("Safari", "iOS", 18),
]


def user_agent(browser: str, os_name: str, version: int) -> str:
    template, _ = BROWSERS[browser]
    return template.format(os=OSES[os_name], v=version)


@dataclass
class World:
    rng: random.Random
    countries: list[str]
    weights: list[float]
    asns: dict[str, list[int]]  # country -> ASNs
    cities: dict[str, list[str]]  # country -> cities, largest first
    utc_offset: dict[str, int]  # country -> hours
    anonymizer_ips: list[tuple[str, int, str]]  # (ip, asn, country)
    next_device: int = 0

    @classmethod
    def make(cls, rng: random.Random) -> World:
        countries = [f"C{i:02d}" for i in range(60)]
        weights = [1 / (i + 1) ** 0.9 for i in range(60)]  # a few large countries, a long tail
        asns = {
            c: [1000 + 100 * i + j for j in range(4 + int(30 * weights[i]))] for i, c in enumerate(countries)
        }
        cities = {
            c: [f"{c}-city{j}" for j in range(2 + int(20 * weights[i]))] for i, c in enumerate(countries)
        }
        offsets = {c: (i * 5) % 18 - 8 for i, c in enumerate(countries)}
        anonymizers = []
        for k in range(600):  # shared exits of a handful of VPN / Tor operators
            asn = 90000 + k % 12
            anonymizers.append((f"185.{k % 12}.{k // 12 % 256}.{k % 251}", asn, rng.choice(countries[:15])))
        return cls(rng, countries, weights, asns, cities, offsets, anonymizers)

    def ip_in(self, asn: int) -> str:
        r = self.rng
        return f"{(asn * 7) % 223 + 1}.{asn % 256}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def country(self) -> str:
        return self.rng.choices(self.countries, self.weights)[0]

    def city(self, country: str) -> str:
        """A city of the country, the larger ones more often (Zipf-like)."""
        names = self.cities[country]
        return self.rng.choices(names, [1 / (j + 1) for j in range(len(names))])[0]

    def device_id(self) -> str:
        self.next_device += 1
        return f"dev-{self.next_device}"


@dataclass
class Device:
    browser: str
    os_name: str
    base: int  # browser version at START
    device_id: str  # the identifier the identity provider sees (registered device or persistent cookie)

    def agent(self, day: float) -> str:
        step = 4 if self.browser != "Safari" else 180  # a new major version every ~4 weeks (Safari: rarely)
        return user_agent(self.browser, self.os_name, self.base + int(day // (step * 7)))


@dataclass
class LegitUser:
    uid: int
    country: str
    isp: int
    carrier: int
    home_ips: list[str]
    devices: list[Device]
    rate: float  # sign-ins over the whole period
    city: str
    work_start: int  # local hour the user's day starts
    mobile_ip: str = ""
    mobile_city: str = ""


@dataclass
class Event:
    at: float  # days since START
    uid: int
    ip: str
    asn: int
    country: str
    agent: str
    kind: str  # legit | naive | vpn | targeted
    anonymizer: bool = False
    device_id: str = ""
    city: str = ""


def make_users(world: World, n: int, mean_sign_ins: float) -> list[LegitUser]:
    rng = world.rng
    users = []
    for uid in range(n):
        country = world.country()
        isp, carrier = (
            rng.sample(world.asns[country], 2)
            if len(world.asns[country]) > 1
            else (world.asns[country][0],) * 2
        )
        homes = [world.ip_in(isp) for _ in range(rng.choice((1, 1, 2, 3)))]
        pairs = rng.choices(PAIRS, [p[2] for p in PAIRS], k=rng.choice((1, 2, 2, 3)))
        devices = [Device(b, o, BROWSERS[b][1] - rng.randrange(3), world.device_id()) for b, o, _ in pairs]
        rate = max(12.0, rng.lognormvariate(math.log(mean_sign_ins) - 0.18, 0.6))
        city = world.city(country)
        users.append(
            LegitUser(
                uid,
                country,
                isp,
                carrier,
                homes,
                devices,
                rate,
                city,
                rng.randrange(6, 11),
                world.ip_in(carrier),
                city,
            )
        )
    return users


def habitual_time(world: World, user: LegitUser) -> float:
    """A moment (days since START): a working day's hours in the user's local time 85% of the time, any
    hour otherwise."""
    rng = world.rng
    day = rng.randrange(DAYS)
    local = user.work_start + rng.uniform(0, 10) if rng.random() < 0.85 else rng.uniform(0, 24)
    return min(DAYS - 1e-6, max(0.0, day + (local - world.utc_offset[user.country]) / 24))


def legit_events(world: World, user: LegitUser) -> list[Event]:
    rng = world.rng
    count = max(12, int(rng.gauss(user.rate, user.rate * 0.1)))
    times = sorted(habitual_time(world, user) for _ in range(count))
    new_device_at = rng.uniform(0, DAYS) if rng.random() < 0.4 else DAYS  # a new phone or laptop
    out = []
    trip_until = -1.0
    trip: tuple[str, int, str] = ("", 0, "")
    for t in times:
        if t >= new_device_at:
            b, o, _ = rng.choices(PAIRS, [p[2] for p in PAIRS])[0]
            user.devices.append(Device(b, o, BROWSERS[b][1] + int(t // 28), world.device_id()))
            new_device_at = DAYS
        device = rng.choice(user.devices)
        if rng.random() < 0.02:  # cookies cleared, a new browser profile, a reinstall
            device.device_id = world.device_id()
        roll = rng.random()
        if t < trip_until:
            ip, asn, country, city = world.ip_in(trip[1]), trip[1], trip[0], trip[2]
        elif roll < 0.004:  # a trip abroad of a few days
            c = world.country()
            trip = (c, rng.choice(world.asns[c]), world.city(c))
            trip_until = t + rng.uniform(1, 6)
            ip, asn, country, city = world.ip_in(trip[1]), trip[1], c, trip[2]
        elif roll < 0.25 and device.os_name in ("Android", "iOS"):
            if rng.random() < 0.3:
                user.mobile_ip = world.ip_in(user.carrier)  # carrier NAT addresses change
                # mostly around home; a commute or a visit elsewhere in the country now and then
                user.mobile_city = user.city if rng.random() < 0.8 else world.city(user.country)
            ip, asn, country, city = user.mobile_ip, user.carrier, user.country, user.mobile_city
        elif roll < 0.30:  # a café, a hotel, a friend's: another ISP at home, now and then in another city
            asn = rng.choice(world.asns[user.country])
            city = user.city if rng.random() < 0.7 else world.city(user.country)
            ip, country = world.ip_in(asn), user.country
        else:
            ip, asn, country, city = rng.choice(user.home_ips), user.isp, user.country, user.city
        out.append(
            Event(
                t, user.uid, ip, asn, country, device.agent(t), "legit", device_id=device.device_id, city=city
            )
        )
    return out


def attack_events(world: World, users: list[LegitUser], n: int) -> list[Event]:
    rng = world.rng
    out = []
    for i in range(n):
        victim = rng.choice(users)
        t = rng.uniform(20, DAYS)  # after most users have learned; any hour (the attacker's own schedule)
        kind = ("naive", "vpn", "targeted")[i % 3]
        # Every attacker signs in from their own machine: a device identifier the victim never used.
        device_id = world.device_id()
        if kind == "naive":
            country = rng.choice(world.countries)
            asn = rng.choice(world.asns[country])
            b, o, _ = rng.choice(PAIRS)
            agent = user_agent(b, o, BROWSERS[b][1] + rng.randrange(-6, 5))
            ip, city, anonymizer = world.ip_in(asn), world.city(country), False
        elif kind == "vpn":
            ip, asn, country = rng.choice(world.anonymizer_ips)
            b, o, _ = rng.choice(PAIRS)
            agent = user_agent(b, o, BROWSERS[b][1] + rng.randrange(0, 5))
            city, anonymizer = world.cities[country][0], True
        else:
            # A residential proxy in the victim's country (a city drawn as people live: often the victim's
            # own large city), the victim's browser and OS at the current release.
            country = victim.country
            asn = rng.choice(world.asns[country])
            device = rng.choice(victim.devices)
            current = BROWSERS[device.browser][1] + int(t // 28)
            agent = user_agent(device.browser, device.os_name, current)
            ip, city, anonymizer = world.ip_in(asn), world.city(country), False
        out.append(Event(t, victim.uid, ip, asn, country, agent, kind, anonymizer, device_id, city))
    # A stress case beyond the three kinds (drawn after them, so their figures do not move): a
    # targeted attacker who also knows the victim's city and signs in during the victim's working hours.
    for _ in range(n // 3):
        victim = rng.choice(users)
        t = habitual_time(world, victim)
        t = t + 20 if t < 20 else t
        asn = rng.choice(world.asns[victim.country])
        device = rng.choice(victim.devices)
        agent = user_agent(device.browser, device.os_name, BROWSERS[device.browser][1] + int(t // 28))
        out.append(
            Event(
                t,
                victim.uid,
                world.ip_in(asn),
                asn,
                victim.country,
                agent,
                "local",
                False,
                world.device_id(),
                victim.city,
            )
        )
    return out


def values_of(e: Event) -> dict[str, str]:
    at = START + timedelta(days=e.at)
    return features.feature_values(e.ip, e.asn, e.country, e.agent, device_id=e.device_id, city=e.city, at=at)


@dataclass
class Model:
    """The per-user and tenant-wide counts ``assess`` keeps in ``protection_feature_counts``, in memory."""

    users: dict[int, dict[tuple[str, str], int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    tenant: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    first_seen: dict[int, float] = field(default_factory=dict)

    def score(
        self,
        uid: int,
        values: dict[str, str],
        day: float,
        groups: tuple[features.Group, ...] = features.GROUPS,
    ) -> float | None:
        mine = self.users.get(uid)
        if mine is None or mine[("ip", features.TOTAL)] < features.LEARNING_SIGN_INS:
            return None
        if day - self.first_seen[uid] < features.LEARNING_DAYS:
            return None
        return features.score(values, features.Counts(mine), features.Counts(self.tenant), groups)

    def learn(self, uid: int, values: dict[str, str], day: float) -> None:
        mine = self.users[uid]
        if mine[("ip", features.TOTAL)] == 0:
            self.tenant[(features.USERS, features.TOTAL)] += 1
            self.first_seen[uid] = day
        for counts in (mine, self.tenant):
            for feature, value in features.learnable(values).items():
                if counts[(feature, value)] == 0:
                    counts[(feature, features.DISTINCT)] += 1
                counts[(feature, value)] += 1
                counts[(feature, features.TOTAL)] += 1


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    ordered = sorted(negatives)
    total = 0.0
    for p in positives:
        below = bisect.bisect_left(ordered, p)
        equal = bisect.bisect_right(ordered, p) - below
        total += below + equal / 2
    return total / (len(positives) * len(negatives))


MODELS = {"freeman": features.FREEMAN_GROUPS, "full": features.GROUPS}
GROUP_NAMES = ["+".join(f for f, _ in g) for g in features.GROUPS]


def rates(attack: list[float], legit: list[float], threshold: float) -> float:
    return sum(1 for s in attack if s > threshold) / len(attack)


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    """Score every sign-in with the paper's model (IP and user-agent groups) and with the full model (plus
    device, location and hour), both on the same learned counts."""
    world = World.make(random.Random(args.seed))
    users = make_users(world, args.users, args.sign_ins / args.users)
    events: list[Event] = []
    for user in users:
        events.extend(legit_events(world, user))
    events.extend(attack_events(world, users, args.attacks))
    events.sort(key=lambda e: e.at)
    model = Model()
    scores: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in MODELS}
    # whether the detectors put the sign-in at medium or above, as assess does: the paper's model with
    # the absolute levels only; the full model also ranked among the tenant's scored sign-ins
    medium: dict[str, dict[str, list[bool]]] = {m: defaultdict(list) for m in MODELS}
    naive_rule: dict[str, list[float]] = defaultdict(list)
    seen_ip: dict[int, set[str]] = defaultdict(set)
    seen_agent: dict[int, set[str]] = defaultdict(set)
    # log10 of each group's likelihood ratio (attack / legit), on every 10th scored sign-in
    parts: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in features.GROUPS])
    started = time.perf_counter()
    scored = 0
    for e in events:
        values = values_of(e)
        for name, groups in MODELS.items():
            s = model.score(e.uid, values, e.at, groups)
            if s is None:
                break
            risk = max(s, MEDIUM_FLOOR) if e.anonymizer else s
            scores[name][e.kind].append(risk)
            tail = None
            if name == "full":
                tail = features.tail_share(s, features.Counts(model.tenant))
                # assess counts every scored sign-in; here only the legitimate ones: the simulation's
                # attack share (3% of sign-ins) is far above a real tenant's and would fill the top 1%
                if e.kind == "legit":
                    model.tenant[(features.SCORE, features.score_bucket(s))] += 1
                    model.tenant[(features.SCORE, features.TOTAL)] += 1
            level = level_of(s, tail)
            medium[name][e.kind].append(e.anonymizer or LEVELS.index(level) >= LEVELS.index("medium"))
        else:
            scored += 1
            naive_rule[e.kind].append(float(e.ip not in seen_ip[e.uid] or e.agent not in seen_agent[e.uid]))
            if scored % 10 == 0:
                ratios = features.group_ratios(
                    values, features.Counts(model.users[e.uid]), features.Counts(model.tenant)
                )
                for i, r in enumerate(ratios):
                    if r is not None:
                        parts[e.kind][i].append(math.log10(r))
        if e.kind == "legit":
            model.learn(e.uid, values, e.at)
            seen_ip[e.uid].add(e.ip)
            seen_agent[e.uid].add(e.agent)
    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {
        "sign_ins": len(events),
        "legit_sign_ins": sum(1 for e in events if e.kind == "legit"),
        "users": len(users),
        "scored": scored,
        "score_us": elapsed / len(events) * 1e6,
        "models": {},
        "parts": {
            kind: [sum(v) / len(v) if v else float("nan") for v in per_group]
            for kind, per_group in parts.items()
        },
    }
    for name in MODELS:
        legit = scores[name]["legit"]
        threshold = sorted(legit)[int(len(legit) * 0.95)]
        result: dict[str, Any] = {
            "threshold": threshold,
            "challenged": rates(legit, legit, threshold),
            "medium": sum(medium[name]["legit"]) / len(medium[name]["legit"]),
            "kinds": {},
        }
        for kind in ("naive", "vpn", "targeted", "local"):
            attack = scores[name][kind]
            result["kinds"][kind] = {
                "n": len(attack),
                "auc": auc(attack, legit),
                "baseline_auc": auc(naive_rule[kind], naive_rule["legit"]),
                "caught": rates(attack, legit, threshold),
                "caught_medium": sum(medium[name][kind]) / len(medium[name][kind]),
            }
        out["models"][name] = result
    return out


def compute_latency(args: argparse.Namespace) -> dict[str, Any]:
    """What ``assess`` computes without the database, per sign-in: IP intelligence, the feature values, the
    Freeman score and every detector, on a learned in-memory model; beside one packaged country lookup."""
    from trustplane.protection import ipintel
    from trustplane.protection.detectors import DETECTORS
    from trustplane.protection.detectors.base import IpFacts, SignInSignal

    world = World.make(random.Random(args.seed + 2))
    users = make_users(world, 300, 60)
    events = sorted((e for u in users for e in legit_events(world, u)), key=lambda e: e.at)
    model = Model()
    for e in events[: len(events) * 2 // 3]:
        model.learn(e.uid, values_of(e), e.at)
    sample = events[len(events) * 2 // 3 :][: args.timed * 5]
    intel = ipintel.IpIntel(None)
    public = [f"81.{i % 200}.{i % 250}.{i % 241 + 1}" for i in range(len(sample))]
    compute_ns = []
    for e, address in zip(sample, public, strict=True):
        t0 = time.perf_counter_ns()
        info = intel.lookup(address)
        values = values_of(e)
        score = model.score(e.uid, values, e.at)
        signal = SignInSignal(
            at=START,
            user_id=str(e.uid),
            ip_address=e.ip,
            ip=IpFacts(info.country, e.asn),
            succeeded=True,
            password_valid=True,
            unfamiliar_score=score,
        )
        for detector in DETECTORS:
            detector.detect(signal)
        compute_ns.append(time.perf_counter_ns() - t0)
    lookup_ns = []
    for address in public:  # resolve: the lookup without the per-address memory (these were just looked up)
        t0 = time.perf_counter_ns()
        intel.resolve(address)
        lookup_ns.append(time.perf_counter_ns() - t0)
    q = sorted(compute_ns)
    lk = sorted(lookup_ns)
    return {
        "n": len(q),
        "p50_us": q[len(q) // 2] / 1000,
        "p99_us": q[int(len(q) * 0.99)] / 1000,
        "lookup_p50_us": lk[len(lk) // 2] / 1000,
        "lookup_p99_us": lk[int(len(lk) * 0.99)] / 1000,
    }


def _stored(feature: str, value: str) -> tuple[str, str]:
    return feature, value if value in (features.TOTAL, features.DISTINCT) else "=" + value


async def seed_history(db: Any, tenant_id: str, ids: list[tuple[str, str]], events: list[Event]) -> int:
    """Learn ``events`` as ``assess`` would (each user's and the tenant's counts, the tenant's histogram of
    the scores of learned users' sign-ins) in memory, and write the rows to ``protection_feature_counts``
    and ``protection_user_counts`` in bulk; the number of sign-ins learned."""
    from trustplane.protection.models import FeatureCount, UserFeatureCounts
    from trustplane.protection.repository import encode_counts

    model = Model()
    histogram: dict[str, int] = defaultdict(int)
    for e in events:
        values = values_of(e)
        s = model.score(e.uid, values, e.at)
        if s is not None:
            histogram[features.score_bucket(s)] += 1
        model.learn(e.uid, values, e.at)
    users: list[dict[str, Any]] = []
    for uid, counts in model.users.items():
        stored: dict[str, dict[str, int]] = {}
        for (feature, value), n in counts.items():
            if n:
                f, v = _stored(feature, value)
                stored.setdefault(f, {})[v] = n
        users.append(
            {
                "user_id": ids[uid][0],
                "counts": encode_counts(stored),
                "revision": 1,
                "first_seen_at": START + timedelta(days=model.first_seen[uid]),
            }
        )
    rows: list[dict[str, Any]] = []
    tenant_rows = {_stored(f, v): n for (f, v), n in model.tenant.items() if n}
    tenant_rows |= {(features.SCORE, "=" + b): n for b, n in histogram.items()}
    tenant_rows[(features.SCORE, features.TOTAL)] = sum(histogram.values())
    for (f, v), n in tenant_rows.items():
        rows.append({"subject": "*", "feature": f, "value": v, "count": n, "first_seen_at": START})
    # In the order a live tenant writes them: a user's rows are created over months, among every other
    # user's (a bulk load in user order would leave each user's rows side by side, which no real table has).
    random.Random(len(rows)).shuffle(rows)
    insert = FeatureCount.__table__.insert()
    for start in range(0, len(rows), 20_000):
        async with db.engine.begin() as conn:
            await conn.execute(insert, [r | {"tenant_id": tenant_id} for r in rows[start : start + 20_000]])
    # Users in random order too (a user's row is created at the first learned sign-in).
    random.Random(len(users)).shuffle(users)
    insert = UserFeatureCounts.__table__.insert()
    for start in range(0, len(users), 2_000):
        async with db.engine.begin() as conn:
            await conn.execute(insert, [u | {"tenant_id": tenant_id} for u in users[start : start + 2_000]])
    print(
        f"  seeded {len(events):,} sign-ins of {len(model.users):,} users: {len(users):,} users' rows of "
        f"counts, {len(tenant_rows):,} tenant-wide rows",
        flush=True,
    )
    return len(events)


async def assess_latency(args: argparse.Namespace) -> dict[str, Any]:
    """``assess`` on a real database: users with a learned history, then timed sign-ins."""
    from sqlalchemy import text

    from trustplane.auth.keys import KeyStore
    from trustplane.bootstrap import ensure_ready
    from trustplane.core.db import Database
    from trustplane.core.events import SYSTEM, EventSpec, emit
    from trustplane.directory import service as directory
    from trustplane.directory.repository import TenantLookup, UserRepository
    from trustplane.protection import ipintel, profiles, service
    from trustplane.protection.repository import FeatureCountRepository, UserCountsRepository

    tmp = tempfile.mkdtemp(prefix="bench-protection-")
    url = args.postgres or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    db = Database(url)
    await ensure_ready(db, KeyStore(3600))
    async with db.session() as session:
        tenant = await TenantLookup(session).default()
        assert tenant is not None
        tenant_id = tenant.id
    world = World.make(random.Random(args.seed + 1))
    n_users = args.tenant_users or args.db_users
    sim_users = make_users(world, n_users, 100 if args.tenant_users else 40)
    ids = []
    for start in range(0, len(sim_users), 500):
        async with db.session() as session:
            for u in sim_users[start : start + 500]:
                created = await directory.create_user(
                    session,
                    tenant_id,
                    SYSTEM,
                    {
                        "user_principal_name": f"u{u.uid}-{os.getpid()}@bench.example",
                        "display_name": f"U {u.uid}",
                        "mail_nickname": f"u{u.uid}",
                    },
                    password=None,
                )
                ids.append((created.id, created.user_principal_name))
    events = []
    for u in sim_users:
        events.extend(legit_events(world, u))
    events.sort(key=lambda e: e.at)
    if args.tenant_users:
        # A tenant of the size: the history is learned in memory (``Model``, the counts ``assess``
        # keeps) and its rows loaded in bulk; assessing a million sign-ins one by one would take an hour.
        split = len(events) - max(args.timed, len(events) // 100)
        warm, timed = [], events[split:][: args.timed]
        seeded = await seed_history(db, tenant_id, ids, events[:split])
    else:
        warm, timed = events[: len(events) // 2], events[len(events) // 2 :][: args.timed]
        seeded = 0

    profile_reads = 0
    reads = [(FeatureCountRepository, "counts"), (UserCountsRepository, "load")]
    real_reads = [getattr(cls, name) for cls, name in reads]

    def counted(read: Any) -> Any:
        async def call(self: Any, *a: Any, **k: Any) -> Any:
            nonlocal profile_reads
            profile_reads += 1
            return await read(self, *a, **k)

        return call

    for (cls, name), read in zip(reads, real_reads, strict=True):
        setattr(cls, name, counted(read))

    async def one(e: Event) -> tuple[int, int, bool, bool]:
        """One sign-in in its own transaction: nanoseconds until ``decide`` had decided, nanoseconds of
        ``record`` and the commit (the durable write), whether the user was in this process's profile cache
        before the call and whether the decision read the database (a user's first touch or a tenant-wide
        count not cached)."""
        user_id, upn = ids[e.uid]
        attempt = service.SignInAttempt(
            user_principal_name=upn,
            user_id=user_id,
            at=START + timedelta(days=e.at),
            ip_address=e.ip,
            user_agent=e.agent,
            asn=e.asn,
            country=e.country[:2],
            city=e.city,
            device_detail={"deviceId": e.device_id},
        )
        warm_user = profiles.user(tenant_id, user_id, None) is not None
        reads_before = profile_reads
        async with db.session() as session:
            # What TrustPlane's sign-in does before it assesses (untimed): it reads the user to check the
            # password, in the transaction the assessment then joins, and passes that user along.
            attempt = dataclasses.replace(attempt, user=await UserRepository(session, tenant_id).get(user_id))
            t0 = time.perf_counter_ns()
            decision = await service.decide(session, tenant_id, attempt)
            t1 = time.perf_counter_ns()
            read_db = not warm_user or profile_reads != reads_before
            await service.record(session, tenant_id, decision)
        t2 = time.perf_counter_ns()
        return t1 - t0, t2 - t1, warm_user, read_db

    for e in warm:
        await one(e)
    # Planner statistics and (PostgreSQL) the visibility map as a long-lived database has them: autovacuum
    # lags behind a table that grew from nothing a minute ago, and the planner then scans where it would
    # probe, or reads the table where the index alone would do.
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE" if args.postgres else "ANALYZE"))
    assess_ns = []
    decide_ns = []
    durable_ns = []
    cold_ns: list[int] = []
    warm_ns: list[int] = []
    warm_cached_ns: list[int] = []  # warm users whose decision read nothing from the database
    profiles.clear()  # every user's first timed sign-in is a first touch (cold)
    ipintel.current().forget()  # its addresses looked up afresh too
    for e in timed:
        t0 = time.perf_counter_ns()
        decided, durable, warm_user, read_db = await one(e)
        assess_ns.append(time.perf_counter_ns() - t0)
        decide_ns.append(decided)
        durable_ns.append(durable)
        (warm_ns if warm_user else cold_ns).append(decided)
        if warm_user and not read_db:
            warm_cached_ns.append(decided)
    for (cls, name), read in zip(reads, real_reads, strict=True):
        setattr(cls, name, read)
    read_ns = []
    for i in range(len(timed)):
        t0 = time.perf_counter_ns()
        async with db.session() as session:
            await directory.get_user(session, tenant_id, ids[i % len(ids)][0])
        read_ns.append(time.perf_counter_ns() - t0)
    # The second yardstick: the smallest durable write, one event row committed in its own transaction.
    write_ns = []
    for i in range(len(timed)):
        t0 = time.perf_counter_ns()
        async with db.session() as session:
            await emit(session, tenant_id, SYSTEM, EventSpec("bench.protection.tick", "bench", str(i)))
        write_ns.append(time.perf_counter_ns() - t0)
    await db.dispose()

    def pct(values: list[int], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(len(values) * q))] / 1000

    return {
        "backend": "postgresql" if args.postgres else "sqlite",
        "users": n_users,
        "seeded_sign_ins": seeded,
        "learned": len(warm),
        "timed": len(timed),
        "decide_p50_us": pct(decide_ns, 0.5),
        "decide_p99_us": pct(decide_ns, 0.99),
        "durable_p50_us": pct(durable_ns, 0.5),
        "durable_p99_us": pct(durable_ns, 0.99),
        "cold": len(cold_ns),
        "cold_p50_us": pct(cold_ns, 0.5),
        "cold_p99_us": pct(cold_ns, 0.99),
        "warm": len(warm_ns),
        "warm_p50_us": pct(warm_ns, 0.5),
        "warm_p99_us": pct(warm_ns, 0.99),
        "warm_cached": len(warm_cached_ns),
        "warm_cached_p50_us": pct(warm_cached_ns, 0.5),
        "warm_cached_p99_us": pct(warm_cached_ns, 0.99),
        "assess_p50_us": pct(assess_ns, 0.5),
        "assess_p99_us": pct(assess_ns, 0.99),
        "read_p50_us": pct(read_ns, 0.5),
        "read_p99_us": pct(read_ns, 0.99),
        "write_p50_us": pct(write_ns, 0.5),
        "write_p99_us": pct(write_ns, 0.99),
        "assess_per_s": len(assess_ns) / (sum(assess_ns) / 1e9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--sign-ins", type=int, default=1_000_000, help="legitimate sign-ins (about)")
    parser.add_argument("--attacks", type=int, default=30_000, help="attacks, a third of each kind")
    parser.add_argument("--db-users", type=int, default=200, help="users for the assess() latency run")
    parser.add_argument("--timed", type=int, default=2000, help="assess() calls timed")
    parser.add_argument(
        "--tenant-users",
        type=int,
        default=0,
        help="time assess() in a tenant of this many users whose history (~100 sign-ins each) is loaded in "
        "bulk (instead of --db-users learned through assess)",
    )
    parser.add_argument("--postgres", default="", help="a postgresql+asyncpg:// URL for the latency run")
    parser.add_argument("--seed", type=int, default=7, help="7 is the population the model was built on")
    parser.add_argument("--sim-only", action="store_true", help="the simulator's figures only (no timing)")
    parser.add_argument("--timing-only", action="store_true", help="the cost of assess only (no simulator)")
    args = parser.parse_args()
    if args.quick:
        args.users, args.sign_ins, args.attacks, args.db_users, args.timed = 500, 30_000, 3_000, 40, 300
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if not args.timing_only:
        sim = simulate(args)
        print(
            f"simulated {sim['sign_ins']:,} sign-ins ({sim['legit_sign_ins']:,} legitimate) "
            f"of {sim['users']:,} users; {sim['scored']:,} scored after the learning period; "
            f"simulation + features + model {sim['score_us']:.1f} us a sign-in"
        )
        for name, label in (
            ("freeman", "Freeman et al. (IP and user-agent groups)"),
            ("full", "full model (+ device, location, hour)"),
        ):
            m = sim["models"][name]
            print(
                f"{label}: threshold {m['threshold']:.3g} challenges {m['challenged']:.2%} of legitimate "
                f"sign-ins; the detectors' medium level or above (assess's levels) {m['medium']:.2%}"
            )
            print(
                f"  {'attacker':<10} {'n':>7} {'ROC AUC':>8} {'naive-rule AUC':>15} {'AUC ratio':>10} "
                f"{'caught at <=5%':>15} {'caught at medium':>17}"
            )
            for kind, r in m["kinds"].items():
                print(
                    f"  {kind:<10} {r['n']:>7,} {r['auc']:>8.4f} {r['baseline_auc']:>15.4f} "
                    f"{r['auc'] / r['baseline_auc']:>10.3f} {r['caught']:>15.2%} {r['caught_medium']:>17.2%}"
                )
        print("mean log10 likelihood ratio (attack / legit) per feature group, every 10th scored sign-in:")
        print("  " + " ".join(f"{g:>14}" for g in ["kind", *GROUP_NAMES]))
        for kind, means in sim["parts"].items():
            print("  " + " ".join(f"{x:>14}" for x in [kind, *(f"{v:+.2f}" for v in means)]))
    if args.sim_only:
        return
    comp = compute_latency(args)
    print(
        f"assess() computation without the database ({comp['n']:,} sign-ins): p50 {comp['p50_us']:.1f} us, "
        f"p99 {comp['p99_us']:.1f} us; yardstick IP-intelligence lookup p50 {comp['lookup_p50_us']:.1f} us, "
        f"p99 {comp['lookup_p99_us']:.1f} us; ratio p99 {comp['p99_us'] / comp['lookup_p99_us']:.1f}x"
    )
    warnings.simplefilter("ignore")  # SQLite's reflection warnings while migrating
    lat = asyncio.run(assess_latency(args))
    print(
        f"assess() on {lat['backend']}, {lat['users']:,} users, after {lat['learned']:,} sign-ins learned "
        f"through assess and {lat['seeded_sign_ins']:,} loaded in bulk, {lat['timed']:,} timed: "
        f"the decision (decide) p50 {lat['decide_p50_us']:.0f} us, p99 {lat['decide_p99_us']:.0f} us; "
        f"first touch of a user ({lat['cold']:,}) p50 {lat['cold_p50_us']:.0f} us, "
        f"p99 {lat['cold_p99_us']:.0f} us; a user in the profile cache ({lat['warm']:,}) "
        f"p50 {lat['warm_p50_us']:.0f} us, p99 {lat['warm_p99_us']:.0f} us; of those, the decisions "
        f"that read nothing from the database ({lat['warm_cached']:,}) "
        f"p50 {lat['warm_cached_p50_us']:.0f} us, p99 {lat['warm_cached_p99_us']:.0f} us"
    )
    print(
        f"  the durable write (record + commit) p50 {lat['durable_p50_us']:.0f} us, "
        f"p99 {lat['durable_p99_us']:.0f} us; the whole transaction p50 {lat['assess_p50_us']:.0f} us, "
        f"p99 {lat['assess_p99_us']:.0f} us ({lat['assess_per_s']:.0f}/s)"
    )
    print(
        f"  yardsticks: read-one-user transaction p50 {lat['read_p50_us']:.0f} us, "
        f"p99 {lat['read_p99_us']:.0f} us; one-event write transaction p50 {lat['write_p50_us']:.0f} us, "
        f"p99 {lat['write_p99_us']:.0f} us; ratios decision/read p50 "
        f"{lat['decide_p50_us'] / lat['read_p50_us']:.2f}x "
        f"p99 {lat['decide_p99_us'] / lat['read_p99_us']:.2f}x, "
        f"durable write/one-event write p50 {lat['durable_p50_us'] / lat['write_p50_us']:.1f}x "
        f"p99 {lat['durable_p99_us'] / lat['write_p99_us']:.1f}x"
    )
    verdict = "met" if lat["decide_p99_us"] <= 1000 else "MISSED"
    print(
        f"  target: the decision's p99 <= 1 ms over every timed sign-in (first touches included): "
        f"{lat['decide_p99_us']:.0f} us, {verdict}; load average {os.getloadavg()[0]:.2f} (latency needs a "
        f"quiet machine). The durable write is a commit: bounded by the one-event write above, not by 1 ms."
    )


if __name__ == "__main__":
    sys.exit(main())
