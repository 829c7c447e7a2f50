"""Risk attributes and the 0-10 score, as MCAS's risk-score page describes it.

Each attribute belongs to one of four categories (general, security, compliance, legal) and gets a
preliminary score from 0 to 10: True/False give 10/0, graded values a place on that range, continuous
values (the vendor's age) a value within it. A category's subscore is the weighted average of its known
attributes; the total is the weighted average of the subscores. Weights come from an importance per
attribute and per category (Ignored, Low, Medium, High, Very High; all Medium by default, i.e. equal).
With ``unknown_counts_against`` an unknown attribute counts as 0 ("N/A values have a negative
contribution"); otherwise it is left out, and an app with nothing known is unscored (None). A per-app
override replaces the total."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("general", "security", "compliance", "legal")
IMPORTANCE = {"ignored": 0, "low": 1, "medium": 2, "high": 3, "veryHigh": 4}

Scorer = Callable[[Any], float | None]


def _bool(value: Any) -> float | None:
    return (10.0 if value else 0.0) if isinstance(value, bool) else None


def _graded(grades: dict[str, float]) -> Scorer:
    def score(value: Any) -> float | None:
        return grades.get(value) if isinstance(value, str) else None

    return score


def _founded(value: Any) -> float | None:
    """Company stability: one point per year of age, 10 from ten years on."""
    from trustplane.core.clock import utcnow

    if not isinstance(value, int) or isinstance(value, bool) or value < 1800:
        return None
    return float(max(0, min(10, utcnow().year - value)))


@dataclass(frozen=True)
class RiskAttribute:
    name: str
    category: str
    scorer: Scorer


_SECURITY_BOOLS = (
    "isMultiFactorAuthentication",
    "isSupportsSaml",
    "isIpAddressRestriction",
    "isUserAuditTrail",
    "isAdminAuditTrail",
    "isDataAuditTrail",
    "isUserRolesSupport",
    "isPenetrationTesting",
    "isDisasterRecoveryPlan",
    "isDataClassification",
    "isDataOwnership",
    "isTrustedCertificate",
    "isValidCertificateName",
    "isHttpSecurityHeadersStrictTransportSecurity",
    "isHttpSecurityHeadersContentSecurityPolicy",
    "isHttpSecurityHeadersXContentTypeOptions",
    "isHttpSecurityHeadersXFrameOptions",
)
_COMPLIANCE_BOOLS = (
    "isSoc1Compliant",
    "isSoc2Compliant",
    "isSoc3Compliant",
    "isIso27001Compliant",
    "isIso27017Compliant",
    "isIso27018Compliant",
    "isHipaaCompliant",
    "isCsaStarCompliant",
    "isFedRampCompliant",
    "isIsae3402Compliant",
    "isSsae16Compliant",
)
_LEGAL_BOOLS = (
    "isDmca",
    "isGdprRightToAccess",
    "isGdprRightToErasure",
    "isGdprDataProtectionOfficer",
    "isGdprReportDataBreaches",
    "isGdprLawfulBasisForProcessing",
    "isGdprSecureCrossBorderDataTransfer",
)

ATTRIBUTES: dict[str, RiskAttribute] = {
    a.name: a
    for a in (
        RiskAttribute("founded", "general", _founded),
        RiskAttribute("holding", "general", _graded({"public": 10.0, "private": 5.0})),
        *(RiskAttribute(n, "security", _bool) for n in _SECURITY_BOOLS),
        RiskAttribute(
            "dataAtRestEncryptionMethod",
            "security",
            _graded(
                {
                    "aes": 10.0,
                    "bitLocker": 10.0,
                    "rsA": 10.0,
                    "des3": 6.0,
                    "blowfish": 6.0,
                    "des": 2.0,
                    "rc4": 2.0,
                    "notSupported": 0.0,
                }
            ),
        ),
        RiskAttribute(
            "tlsEncryptionProtocol",
            "security",
            _graded({"tls1_3": 10.0, "tls1_2": 8.0, "tls1_1": 3.0, "tls1_0": 1.0, "notSupported": 0.0}),
        ),
        *(RiskAttribute(n, "compliance", _bool) for n in _COMPLIANCE_BOOLS),
        RiskAttribute(
            "pciDssVersion",
            "compliance",
            _graded({"v4": 10.0, "v3": 8.0, "v2": 5.0, "v1": 3.0, "notSupported": 0.0}),
        ),
        *(RiskAttribute(n, "legal", _bool) for n in _LEGAL_BOOLS),
        RiskAttribute(
            "dataRetentionPolicy",
            "legal",
            _graded(
                {
                    "deletedImmediately": 10.0,
                    "deletedWithinTwoWeeks": 8.0,
                    "deletedWithinOneMonth": 6.0,
                    "deletedWithinThreeMonths": 4.0,
                    "deletedWithinMoreThanThreeMonths": 2.0,
                    "dataRetained": 0.0,
                }
            ),
        ),
    )
}
# Facts kept with an app but not scored (MCAS shows them; they carry no better-or-worse order).
DESCRIPTIVE = frozenset({"headquarters", "dataCenter", "hostingCompany", "logonUrls"})


@dataclass(frozen=True)
class ScoreSettings:
    """A tenant's score metrics. Missing names take ``medium``."""

    category_importance: dict[str, str] = field(default_factory=dict)
    attribute_importance: dict[str, str] = field(default_factory=dict)
    unknown_counts_against: bool = False

    def validate(self) -> None:
        for name, level in self.category_importance.items():
            if name not in CATEGORIES:
                raise ValueError(f"unknown risk category {name!r}; known: {list(CATEGORIES)}")
            if level not in IMPORTANCE:
                raise ValueError(f"unknown importance {level!r}; known: {list(IMPORTANCE)}")
        for name, level in self.attribute_importance.items():
            if name not in ATTRIBUTES:
                raise ValueError(f"unknown risk attribute {name!r}")
            if level not in IMPORTANCE:
                raise ValueError(f"unknown importance {level!r}; known: {list(IMPORTANCE)}")


DEFAULT_SETTINGS = ScoreSettings()


@dataclass(frozen=True)
class RiskScore:
    total: int | None
    general: float | None
    security: float | None
    compliance: float | None
    legal: float | None
    overridden: bool = False


def _weight(level: str | None) -> int:
    return IMPORTANCE.get(level or "medium", IMPORTANCE["medium"])


def score(
    facts: dict[str, Any], settings: ScoreSettings = DEFAULT_SETTINGS, override: int | None = None
) -> RiskScore:
    """``facts`` maps attribute name to value; an attribute absent (or ``"unknown"``) is unknown."""
    sub: dict[str, float | None] = {}
    for category in CATEGORIES:
        total_weight = 0.0
        weighted = 0.0
        for attr in ATTRIBUTES.values():
            if attr.category != category:
                continue
            w = _weight(settings.attribute_importance.get(attr.name))
            if w == 0:
                continue
            value = facts.get(attr.name)
            points = None if value is None or value == "unknown" else attr.scorer(value)
            if points is None:
                if settings.unknown_counts_against:
                    total_weight += w
                continue
            total_weight += w
            weighted += w * points
        sub[category] = round(weighted / total_weight, 2) if total_weight else None
    total_weight = 0.0
    weighted = 0.0
    for category in CATEGORIES:
        value = sub[category]
        w = _weight(settings.category_importance.get(category))
        if value is None or w == 0:
            continue
        total_weight += w
        weighted += w * value
    total = int(weighted / total_weight + 0.5) if total_weight else None
    if override is not None:
        return RiskScore(override, sub["general"], sub["security"], sub["compliance"], sub["legal"], True)
    return RiskScore(total, sub["general"], sub["security"], sub["compliance"], sub["legal"])
