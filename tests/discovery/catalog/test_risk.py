from trustplane.discovery.catalog.risk import ATTRIBUTES, ScoreSettings, score


def test_true_false_give_ten_and_zero_and_the_total_averages_the_categories() -> None:
    result = score({"isMultiFactorAuthentication": True, "isSoc2Compliant": False})
    assert (result.security, result.compliance, result.general, result.legal) == (10.0, 0.0, None, None)
    assert result.total == 5


def test_an_app_with_nothing_known_is_unscored() -> None:
    assert score({}).total is None


def test_unknown_counts_against_when_the_option_is_set() -> None:
    facts = {"isMultiFactorAuthentication": True}
    assert score(facts).total == 10
    against = score(facts, ScoreSettings(unknown_counts_against=True))
    security_attrs = sum(1 for a in ATTRIBUTES.values() if a.category == "security")
    assert against.security == round(10 / security_attrs, 2)
    assert against.total == 0  # the other three categories are all unknown, so 0 each


def test_category_weights_change_the_total() -> None:
    facts = {"isMultiFactorAuthentication": True, "isSoc2Compliant": False}
    heavy_security = ScoreSettings(category_importance={"security": "veryHigh", "compliance": "low"})
    assert score(facts, heavy_security).total == 8  # (4*10 + 1*0) / 5
    ignored = ScoreSettings(category_importance={"compliance": "ignored"})
    assert score(facts, ignored).total == 10


def test_attribute_weights_change_the_subscore() -> None:
    facts = {"isMultiFactorAuthentication": True, "isSupportsSaml": False}
    assert score(facts).security == 5.0
    weighted = ScoreSettings(
        attribute_importance={"isMultiFactorAuthentication": "veryHigh", "isSupportsSaml": "low"}
    )
    assert score(facts, weighted).security == 8.0


def test_graded_values_fall_within_the_range() -> None:
    assert score({"tlsEncryptionProtocol": "tls1_2"}).security == 8.0
    assert score({"dataRetentionPolicy": "dataRetained"}).legal == 0.0


def test_override_replaces_the_total_and_keeps_the_subscores() -> None:
    result = score({"isSoc2Compliant": False}, override=9)
    assert (result.total, result.compliance, result.overridden) == (9, 0.0, True)
