"""The app catalogue shipped with TrustPlane: cloud apps with their domains, MCAS category, vendor and sourced
risk attributes (``apps.json``, built by ``build.py`` from ``sources/``; no download at run time), and the
domain → app match: the longest catalogue entry that is the host itself or a parent of it, down to the
host's registrable domain (public suffix list bundled with tldextract, used offline)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import tldextract

from trustplane.discovery.catalog.risk import RiskScore, ScoreSettings, score


@dataclass(frozen=True)
class CatalogApp:
    id: str
    name: str
    vendor: str
    category: str
    domains: tuple[str, ...]
    risk: dict[str, Any]  # attribute -> {"value", "source", "note"}; absent means unknown

    def facts(self) -> dict[str, Any]:
        return {name: fact["value"] for name, fact in self.risk.items()}

    def score(self, settings: ScoreSettings | None = None, override: int | None = None) -> RiskScore:
        return score(self.facts(), settings or ScoreSettings(), override)


_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str | None:
    """``files.example.co.uk`` → ``example.co.uk``; None for an IP address or a bare suffix."""
    result = _EXTRACT(host)
    if not result.suffix or not result.domain:
        return None
    return f"{result.domain}.{result.suffix}"


class Catalog:
    def __init__(self, apps: list[CatalogApp]) -> None:
        self.apps = {a.id: a for a in apps}
        self._by_domain = {d: a for a in apps for d in a.domains}
        self.match = lru_cache(maxsize=65536)(self._match)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Catalog:
        return cls(
            [
                CatalogApp(
                    a["id"], a["name"], a["vendor"], a["category"], tuple(a["domains"]), dict(a["risk"])
                )
                for a in data["apps"]
            ]
        )

    def _match(self, host: str) -> CatalogApp | None:
        host = host.strip().rstrip(".").lower()
        if not host:
            return None
        floor = registrable_domain(host)
        if floor is None:
            return self._by_domain.get(host)
        labels = host.split(".")
        floor_len = floor.count(".") + 1
        for start in range(0, len(labels) - floor_len + 1):
            app = self._by_domain.get(".".join(labels[start:]))
            if app is not None:
                return app
        return None


@lru_cache(maxsize=1)
def shipped_catalog() -> Catalog:
    text = resources.files(__package__).joinpath("apps.json").read_text(encoding="utf-8")
    return Catalog.from_data(json.loads(text))
