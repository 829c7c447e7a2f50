"""The unfamiliar-properties model on plain counts: the device, location and hour groups beside Freeman et
al.'s IP and user-agent groups (left out when unknown or never seen for the user), and the tenant
calibration histogram."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from trustplane.protection import features

AT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
from tests.protection.support import CHROME  # noqa: E402


def learn(counts: dict[tuple[str, str], int], values: dict[str, str]) -> None:
    for feature, value in features.learnable(values).items():
        if counts[(feature, value)] == 0:
            counts[(feature, features.DISTINCT)] += 1
        counts[(feature, value)] += 1
        counts[(feature, features.TOTAL)] += 1


def history(
    device: str | None = "laptop-1", city: str | None = "London"
) -> tuple[features.Counts, features.Counts]:
    user: dict[tuple[str, str], int] = defaultdict(int)
    tenant: dict[tuple[str, str], int] = defaultdict(int)
    for n in range(30):
        mine = features.feature_values("81.2.69.160", 2856, "GB", CHROME, device_id=device, city=city, at=AT)
        other = features.feature_values(
            f"90.{n}.1.1", 1000 + n, "FR", CHROME, device_id=f"d{n}", city="Paris", at=AT.replace(hour=n % 24)
        )
        for counts in (user, tenant):
            learn(counts, mine)
        learn(tenant, other)
    tenant[(features.USERS, features.TOTAL)] = 2
    return features.Counts(user), features.Counts(tenant)


def ratios(values: dict[str, str], user: features.Counts, tenant: features.Counts) -> dict[str, float | None]:
    names = ["+".join(f for f, _ in g) for g in features.GROUPS]
    return dict(zip(names, features.group_ratios(values, user, tenant), strict=True))


def test_a_known_device_city_and_hour_speak_for_the_user_and_new_ones_against() -> None:
    user, tenant = history()
    home = features.feature_values(
        "81.2.69.160", 2856, "GB", CHROME, device_id="laptop-1", city="London", at=AT
    )
    away = features.feature_values(
        "81.2.69.160", 2856, "GB", CHROME, device_id="new-box", city="Leeds", at=AT.replace(hour=3)
    )
    known, new = ratios(home, user, tenant), ratios(away, user, tenant)
    for group in ("dev", "loc", "hr"):
        assert known[group] is not None and known[group] < 1  # type: ignore[operator]
        assert new[group] == 4.0  # never seen for the user: the unseen-locally rule, p_global / 4
    assert features.score(away, user, tenant) > 10 * features.score(home, user, tenant)
    # the paper's model alone cannot tell them apart: same address and agent
    assert features.score(away, user, tenant, features.FREEMAN_GROUPS) == features.score(
        home, user, tenant, features.FREEMAN_GROUPS
    )


def test_unknown_or_never_learned_context_carries_no_information() -> None:
    user, tenant = history(device=None, city=None)  # a source that sends neither
    values = features.feature_values("81.2.69.160", 2856, "GB", CHROME, device_id="x", city="Leeds", at=AT)
    assert ratios(values, user, tenant)["dev"] is None and ratios(values, user, tenant)["loc"] is None
    unknown = features.feature_values("81.2.69.160", 2856, "GB", CHROME, at=None)
    assert features.feature_values("81.2.69.160", 2856, "GB", CHROME)["hr"] == features.UNKNOWN
    assert ratios(unknown, *history())["hr"] is None


def test_hour_bands_are_three_hours_wide() -> None:
    assert [features.hour_band(h) for h in (0, 2, 3, 13, 23)] == ["00-03", "00-03", "03-06", "12-15", "21-24"]


def test_score_buckets_rise_with_the_score_and_the_tail_needs_enough_sign_ins() -> None:
    scores = [1e-9, 1e-4, 0.01, 0.5, 0.9, 0.999, 1.0]
    indexes = [features.BUCKETS.index(features.score_bucket(s)) for s in scores]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    histogram = {
        (features.SCORE, features.score_bucket(1e-6)): 990,
        (features.SCORE, features.score_bucket(0.5)): 10,
    }
    assert (
        features.tail_share(0.5, features.Counts({**histogram, (features.SCORE, features.TOTAL): 999}))
        is None
    )
    tenant = features.Counts({**histogram, (features.SCORE, features.TOTAL): 1000})
    assert features.tail_share(0.5, tenant) == 0.01
    assert features.tail_share(0.99, tenant) == 0.0
    assert features.tail_share(1e-6, tenant) == 1.0


def test_a_users_table_scores_as_the_same_counts_keyed_by_pairs() -> None:
    """A user's counts as ``protection_user_counts`` stores and the cache holds them ({feature: {value as
    stored: count}}, read through ``TableCounts``) score exactly as the same counts keyed by (feature, value);
    ``observe`` counts an observation as ``learn`` above does."""
    user, tenant = history()
    table: features.Table = {}
    for (feature, value), n in user.values.items():
        stored = value if value in (features.TOTAL, features.DISTINCT) else "=" + value
        table.setdefault(feature, {})[stored] = n
    as_table = features.TableCounts(table)
    for values in (
        features.feature_values(
            "81.2.69.160", 2856, "GB", CHROME, device_id="laptop-1", city="London", at=AT
        ),
        features.feature_values("90.3.1.1", 1003, "FR", CHROME, device_id="d3", city="Paris", at=AT),
        features.feature_values("1.2.3.4", None, None, "curl/8", at=AT.replace(hour=4)),
    ):
        assert features.score(values, as_table, tenant) == features.score(values, user, tenant)
        assert features.group_ratios(values, as_table, tenant) == features.group_ratios(values, user, tenant)
        pairs: dict[tuple[str, str], int] = defaultdict(int, user.values)
        learn(pairs, values)
        observed = [(f, "=" + v) for f, v in features.learnable(values).items()]
        before = {f: dict(counts) for f, counts in table.items()}
        after = features.observe(table, observed)
        assert table == before  # a copy: the table it was given is left as it was
        flat = {(f, v.removeprefix("=")): n for f, counts in after.items() for v, n in counts.items()}
        assert flat == {k: n for k, n in pairs.items() if n}
