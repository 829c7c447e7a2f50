"""The unfamiliar sign-in properties model: Freeman, Jain, Dürmuth, Biggio and Giacinto, "Who Are You? A
Statistical Approach to Measuring User Authenticity" (NDSS 2016), without per-user attack data:

    S_u(x) = p(u | attack) / p(u | legit) * prod_k p(x_k | attack) / p(x_k | u, legit)

with p(u | attack) = 1 / |U|, p(u | legit) = N_u / N, p(x_k | attack) taken as the tenant-wide frequency of
the value, and the likelihood of a value seen c times among N observations with M distinct values smoothed
as c/N * (1 - M/(N+M)) (c > 0) or 1/(N+M) (unseen). A value the user never used gets a quarter of its
tenant-wide likelihood. Features are hierarchical and their sub-features interpolated linearly: IP (address
0.6, ASN 0.3, country 0.1) and user agent (full string 0.5387, browser and version 0.2680, OS and version
0.1882, device type 0.0051); a sub-feature whose value is unknown (no ASN data for the address) is left out
and the others' weights scaled up. The score shown is S / (1 + S), in [0, 1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

GROUPS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("ip", 0.6), ("asn", 0.3), ("cc", 0.1)),
    (("ua", 0.5387), ("bv", 0.2680), ("osv", 0.1882), ("dt", 0.0051)),
)
FEATURES = tuple(name for group in GROUPS for name, _ in group)
TOTAL = "#total"
DISTINCT = "#distinct"
USERS = "users"  # tenant-wide: TOTAL counts the users with a history
UNKNOWN = "?"
MAX_VALUE = 500
LEARNING_SIGN_INS = 10  # successful sign-ins before the model speaks for a user
LEARNING_DAYS = 5  # Entra: new users are in learning mode for at least five days

_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"OPR/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)(?:\.\d+)*.*Safari/")),
)
_OSES = (
    ("Windows", re.compile(r"Windows NT (\d+\.\d+)")),
    ("iOS", re.compile(r"(?:iPhone|iPad|iPod).*? OS (\d+)")),
    ("macOS", re.compile(r"Mac OS X (\d+[._]\d+)")),
    ("Android", re.compile(r"Android (\d+)")),
    ("ChromeOS", re.compile(r"CrOS \S+ (\d+)")),
    ("Linux", re.compile(r"Linux()")),
)


def parse_user_agent(ua: str) -> tuple[str, str, str]:
    """(browser and major version, OS and version, device type) of a user-agent string; "?" where unknown."""
    browser = next((f"{name} {m.group(1)}" for name, rx in _BROWSERS if (m := rx.search(ua))), UNKNOWN)
    os_name = next((f"{name} {m.group(1)}".strip() for name, rx in _OSES if (m := rx.search(ua))), UNKNOWN)
    if "iPad" in ua or "Tablet" in ua:
        device = "tablet"
    elif "Mobi" in ua or "iPhone" in ua or "Android" in ua:
        device = "mobile"
    elif ua:
        device = "desktop"
    else:
        device = UNKNOWN
    return browser, os_name.replace("_", "."), device


def feature_values(ip: str | None, asn: int | None, country: str | None, ua: str | None) -> dict[str, str]:
    browser, os_name, device = parse_user_agent(ua or "")
    values = {
        "ip": ip or UNKNOWN,
        "asn": str(asn) if asn is not None else UNKNOWN,
        "cc": country or UNKNOWN,
        "ua": ua or UNKNOWN,
        "bv": browser,
        "osv": os_name,
        "dt": device,
    }
    return {k: v[:MAX_VALUE] for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts of one subject (a user or the tenant): (feature, value) -> count, value TOTAL / DISTINCT."""

    values: Mapping[tuple[str, str], int]

    def get(self, feature: str, value: str) -> int:
        return self.values.get((feature, value), 0)

    def total(self, feature: str) -> int:
        return self.get(feature, TOTAL)

    def distinct(self, feature: str) -> int:
        return self.get(feature, DISTINCT)


def smoothed(count: int, total: int, distinct: int) -> float:
    if total + distinct == 0:
        return 1.0
    if count > 0:
        return count / total * (1 - distinct / (total + distinct))
    return 1 / (total + distinct)


def score(values: Mapping[str, str], user: Counts, tenant: Counts) -> float:
    """S / (1 + S) for this sign-in of this user."""
    n_user = user.total("ip")
    n_all = tenant.total("ip")
    n_users = max(tenant.total(USERS), 1)
    if n_user == 0 or n_all == 0:
        return 1.0
    ratio = (1 / n_users) / (n_user / n_all)
    for group in GROUPS:
        # An unknown value (no ASN for the address, an unparsable agent) carries no information: its
        # weight goes to the group's known sub-features.
        known = [(f, w) for f, w in group if values[f] != UNKNOWN] or list(group)
        scale = 1 / sum(w for _, w in known)
        p_attack = 0.0
        p_legit = 0.0
        for feature, weight in known:
            weight *= scale
            value = values[feature]
            p_global = smoothed(tenant.get(feature, value), tenant.total(feature), tenant.distinct(feature))
            c_user = user.get(feature, value)
            p_local = (
                smoothed(c_user, user.total(feature), user.distinct(feature)) if c_user > 0 else p_global / 4
            )
            p_attack += weight * p_global
            p_legit += weight * p_local
        ratio *= p_attack / p_legit
    return ratio / (1 + ratio)
