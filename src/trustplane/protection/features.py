"""The unfamiliar sign-in properties model: Freeman, Jain, Dürmuth, Biggio and Giacinto, "Who Are You? A
Statistical Approach to Measuring User Authenticity" (NDSS 2016), without per-user attack data:

    S_u(x) = p(u | attack) / p(u | legit) * prod_k p(x_k | attack) / p(x_k | u, legit)

with p(u | attack) = 1 / |U|, p(u | legit) = N_u / N, p(x_k | attack) taken as the tenant-wide frequency of
the value, and the likelihood of a value seen c times among N observations with M distinct values smoothed
as c/N * (1 - M/(N+M)) (c > 0) or 1/(N+M) (unseen). A value the user never used gets a quarter of its
tenant-wide likelihood. Features are hierarchical and their sub-features interpolated linearly: IP (address
0.6, ASN 0.3, country 0.1) and user agent (full string 0.5387, browser and version 0.2680, OS and version
0.1882, device type 0.0051); a sub-feature whose value is unknown (no ASN data for the address) is left out
and the others' weights scaled up.

Beyond the two groups of the paper, the product takes three more factors, for the properties Entra's
unfamiliar sign-in properties detection documents besides IP, ASN and browser (location and device) and
for the time of day: the device identifier the identity provider passes (``deviceDetail.deviceId``: a
registered device's id or a persistent browser identifier), the sign-in's city (with region and country),
and the UTC hour band (three hours wide). Each is a one-feature group with the same smoothing and the same
unseen-locally rule; a group whose value is unknown, or for which the user has no history yet (a sign-in
source that never sends a device id, data learned before the feature existed), is left out of the product:
it carries no information about the user. The score shown is S / (1 + S), in [0, 1)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from itertools import repeat

Group = tuple[tuple[str, float], ...]
# Freeman et al.'s two hierarchical groups, with the das-group weights.
FREEMAN_GROUPS: tuple[Group, ...] = (
    (("ip", 0.6), ("asn", 0.3), ("cc", 0.1)),
    (("ua", 0.5387), ("bv", 0.2680), ("osv", 0.1882), ("dt", 0.0051)),
)
# One-feature groups: device identifier, location (country/region/city), UTC hour band.
CONTEXT_GROUPS: tuple[Group, ...] = ((("dev", 1.0),), (("loc", 1.0),), (("hr", 1.0),))
GROUPS: tuple[Group, ...] = FREEMAN_GROUPS + CONTEXT_GROUPS
FEATURES = tuple(name for group in GROUPS for name, _ in group)
HOUR_BAND = 3
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


@lru_cache(maxsize=4096)
def parse_user_agent(ua: str) -> tuple[str, str, str]:
    """(browser and major version, OS and version, device type) of a user-agent string; "?" where unknown.
    Remembered: a tenant's sign-ins come from a few thousand agents, and the eleven searches are most of
    ``feature_values``' cost."""
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


def feature_values(
    ip: str | None,
    asn: int | None,
    country: str | None,
    ua: str | None,
    *,
    device_id: str | None = None,
    city: str | None = None,
    region: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    browser, os_name, device = parse_user_agent(ua or "")
    values = {
        "ip": ip or UNKNOWN,
        "asn": str(asn) if asn is not None else UNKNOWN,
        "cc": country or UNKNOWN,
        "ua": ua or UNKNOWN,
        "bv": browser,
        "osv": os_name,
        "dt": device,
        "dev": device_id or UNKNOWN,
        "loc": f"{country or UNKNOWN}/{region or ''}/{city}" if city else UNKNOWN,
        "hr": hour_band(at.hour) if at is not None else UNKNOWN,
    }
    return {k: v[:MAX_VALUE] for k, v in values.items()}


CONTEXT_FEATURES = frozenset(f for group in CONTEXT_GROUPS for f, _ in group)


def learnable(values: Mapping[str, str]) -> dict[str, str]:
    """The values a learned sign-in adds to the counts: an unknown device, location or hour is not a value
    of the user's (a source that never sends it leaves the group without history, so it is left out)."""
    return {f: v for f, v in values.items() if not (v == UNKNOWN and f in CONTEXT_FEATURES)}


Table = dict[str, dict[str, int]]  # one subject's counts by feature: {feature: {value as stored: count}}


def observe(table: Mapping[str, Mapping[str, int]], observed: Iterable[tuple[str, str]]) -> Table:
    """A subject's counts (``Table``, values as stored) with one more observation of each (feature,
    "=<value>"): the value's count and the feature's TOTAL go up by one, and DISTINCT too when the value is
    new; a copy."""
    out = {feature: dict(values) for feature, values in table.items()}
    for feature, value in observed:
        counts = out.setdefault(feature, {})
        n = counts.get(value, 0)
        if n == 0:
            counts[DISTINCT] = counts.get(DISTINCT, 0) + 1
        counts[value] = n + 1
        counts[TOTAL] = counts.get(TOTAL, 0) + 1
    return out


def hour_band(hour: int) -> str:
    start = hour // HOUR_BAND * HOUR_BAND
    return f"{start:02d}-{start + HOUR_BAND:02d}"


class Counts:
    """Counts of one subject (a user or the tenant): (feature, value) -> count, value TOTAL / DISTINCT.

    ``stored=True`` reads a table keyed as ``protection_feature_counts`` stores it (a value behind "=":
    ("ip", "=81.2.69.160"), ("ip", "#total")), so the cached rows are read as they are, without a copy per
    sign-in; ``extra`` are more tables whose counts are added (a process's unwritten increments, values
    looked up elsewhere)."""

    __slots__ = ("_prefix", "extra", "values")

    def __init__(
        self,
        values: Mapping[tuple[str, str], int],
        *extra: Mapping[tuple[str, str], int],
        stored: bool = False,
    ) -> None:
        self.values = values
        self.extra = tuple(table for table in extra if table)
        self._prefix = "=" if stored else ""

    def _count(self, key: tuple[str, str]) -> int:
        n = self.values.get(key, 0)
        for table in self.extra:
            n += table.get(key, 0)
        return n

    def get(self, feature: str, value: str) -> int:
        return self._count((feature, self._prefix + value))

    def total(self, feature: str) -> int:
        return self._count((feature, TOTAL))

    def distinct(self, feature: str) -> int:
        return self._count((feature, DISTINCT))

    def smoothed(self, feature: str, value: str) -> tuple[int, float]:
        """The value's count and its smoothed likelihood among the feature's observations (``smoothed``);
        the model's inner step, so its lookups are written out."""
        values = self.values
        key, total, distinct = (feature, self._prefix + value), (feature, TOTAL), (feature, DISTINCT)
        count, n, m = values.get(key, 0), values.get(total, 0), values.get(distinct, 0)
        for table in self.extra:
            count, n, m = count + table.get(key, 0), n + table.get(total, 0), m + table.get(distinct, 0)
        return count, smoothed(count, n, m)

    def sum_of(self, feature: str, values: Iterable[str]) -> int:
        """The counts of several values of a feature, added up."""
        prefix, zero = self._prefix, repeat(0)
        keys = [(feature, prefix + v) for v in values]
        return sum(sum(map(table.get, keys, zero)) for table in (self.values, *self.extra))


_NONE: Mapping[str, int] = {}


class TableCounts:
    """``Counts``' reads over one subject's ``Table`` (a user's counts as ``protection_user_counts`` stores
    them and the process caches them: nested dictionaries of strings and integers, which the garbage
    collector does not track, where ~90 (feature, value) tuples a user were tracked until a collection)."""

    __slots__ = ("table",)

    def __init__(self, table: Mapping[str, Mapping[str, int]]) -> None:
        self.table = table

    def total(self, feature: str) -> int:
        return self.table.get(feature, _NONE).get(TOTAL, 0)

    def smoothed(self, feature: str, value: str) -> tuple[int, float]:
        counts = self.table.get(feature, _NONE)
        count = counts.get("=" + value, 0)
        return count, smoothed(count, counts.get(TOTAL, 0), counts.get(DISTINCT, 0))


def smoothed(count: int, total: int, distinct: int) -> float:
    if total + distinct == 0:
        return 1.0
    if count > 0:
        return count / total * (1 - distinct / (total + distinct))
    return 1 / (total + distinct)


def group_ratios(
    values: Mapping[str, str], user: Counts | TableCounts, tenant: Counts, groups: tuple[Group, ...] = GROUPS
) -> list[float | None]:
    """Each group's p(x | attack) / p(x | u, legit); None for a group left out (see the module doc)."""
    out: list[float | None] = []
    for group in groups:
        if len(group) == 1:
            ((feature, _),) = group
            value = values[feature]
            if value == UNKNOWN or user.total(feature) == 0:
                out.append(None)
                continue
            c_user, p_local = user.smoothed(feature, value)
            # A value the user never used: p_legit = p_attack / 4 whatever p_attack is.
            out.append(tenant.smoothed(feature, value)[1] / p_local if c_user else 4.0)
            continue
        # An unknown value (no ASN for the address, an unparsable agent) carries no information: its
        # weight goes to the group's known sub-features.
        known = [(f, w) for f, w in group if values[f] != UNKNOWN] or list(group)
        scale = 1 / sum(w for _, w in known)
        p_attack = 0.0
        p_legit = 0.0
        for feature, weight in known:
            value = values[feature]
            p_global = tenant.smoothed(feature, value)[1]
            c_user, p_local = user.smoothed(feature, value)
            p_attack += weight * scale * p_global
            p_legit += weight * scale * (p_local if c_user else p_global / 4)
        out.append(p_attack / p_legit)
    return out


def score(
    values: Mapping[str, str], user: Counts | TableCounts, tenant: Counts, groups: tuple[Group, ...] = GROUPS
) -> float:
    """S / (1 + S) for this sign-in of this user (``groups``: FREEMAN_GROUPS for the paper's model)."""
    n_user = user.total("ip")
    n_all = tenant.total("ip")
    n_users = max(tenant.total(USERS), 1)
    if n_user == 0 or n_all == 0:
        return 1.0
    ratio = (1 / n_users) / (n_user / n_all)
    for factor in group_ratios(values, user, tenant, groups):
        if factor is not None:
            ratio *= factor
    return ratio / (1 + ratio)


# ---------------------------------------------------------------- calibration against the tenant

# The likelihood ratio S says how much likelier an attacker drawn from the tenant's own traffic is than the
# user; an attacker who copies the user's country and browser keeps S low in absolute terms while still
# ranking far above the user's own sign-ins. So the detector also asks where this sign-in's S falls among
# the tenant's scored sign-ins (a histogram of log10 S in half-decade buckets, kept as tenant-wide counts
# of the feature SCORE): a sign-in rarer than 1 in 100 of them is at least medium, 1 in 1,000 high.
SCORE = "score"
BUCKET_MIN, BUCKET_MAX = -40, 12  # half-decades: S from 1e-20 to 1e6
BUCKETS = tuple(f"b{i}" for i in range(BUCKET_MIN, BUCKET_MAX + 1))
_BUCKET_AT = {bucket: i for i, bucket in enumerate(BUCKETS)}
MIN_CALIBRATION = 1000  # scored sign-ins in the tenant before its histogram is used


def score_bucket(score_value: float) -> str:
    """The histogram bucket of a score S / (1 + S)."""
    if score_value >= 1.0:
        return BUCKETS[-1]
    ratio = score_value / (1 - score_value)
    index = math.floor(2 * math.log10(ratio)) if ratio > 0 else BUCKET_MIN
    return f"b{min(BUCKET_MAX, max(BUCKET_MIN, index))}"


def tail_share(score_value: float, tenant: Counts) -> float | None:
    """The share of the tenant's scored sign-ins that scored as high as this one or higher (same bucket
    included); None until the tenant has ``MIN_CALIBRATION`` of them."""
    total = tenant.total(SCORE)
    if total < MIN_CALIBRATION:
        return None
    start = _BUCKET_AT[score_bucket(score_value)]
    return tenant.sum_of(SCORE, BUCKETS[start:]) / total
