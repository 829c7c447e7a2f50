"""Build the shipped catalogue (``apps.json``) from the curated sources in ``sources/``.

Run at development time: ``python -m trustplane.discovery.catalog.build`` (``--check`` fails if the shipped
file is stale). Validates that every category is one of MCAS's, every domain is a lower-case host name used
by exactly one app, and every risk attribute is a known one carrying a ``source`` citation."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from trustplane.discovery.catalog.risk import ATTRIBUTES, DESCRIPTIVE

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
OUTPUT = HERE / "apps.json"

# MCAS's cloud app catalogue categories (risk-score page, "Supported cloud app catalog categories").
CATEGORIES = (
    "Accounting and finance", "Advertising", "Business intelligence", "Business management", "CRM",
    "Cloud computing platform", "Cloud storage", "Code hosting", "Collaboration", "Communications",
    "Content management", "Content sharing", "Customer support", "Data analytics", "Development tools",
    "E-commerce", "Education", "Forums", "Health", "Hosting services", "Human-resource management",
    "Generative AI", "IT services", "Internet of Things", "Marketing", "News and entertainment",
    "Online meetings", "Operations management", "Personal instant messaging", "Product design",
    "Productivity", "Project management", "Property management", "Sales", "Security", "Social network",
    "Supply chain and logistics", "Transportation and travel", "Vendor management system", "Web analytics",
    "Webmail", "Website monitoring",
)  # fmt: skip

_HOST = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class CatalogError(ValueError):
    pass


def build(sources: Path = SOURCES) -> dict[str, Any]:
    apps: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for path in sorted(sources.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for entry in data.get("app", []):
            apps.append(_app(entry, path.name, owner))
    ids = [a["id"] for a in apps]
    if len(ids) != len(set(ids)):
        raise CatalogError("duplicate app ids")
    apps.sort(key=lambda a: a["id"])
    return {"version": 1, "apps": apps}


def _app(entry: dict[str, Any], origin: str, owner: dict[str, str]) -> dict[str, Any]:
    where = f"{origin}: app {entry.get('id')!r}"
    for key in ("id", "name", "vendor", "category", "domains"):
        if not entry.get(key):
            raise CatalogError(f"{where}: missing {key}")
    if not _ID.match(entry["id"]):
        raise CatalogError(f"{where}: id must be lower-case letters, digits and dashes")
    if entry["category"] not in CATEGORIES:
        raise CatalogError(f"{where}: category {entry['category']!r} is not an MCAS category")
    domains = list(entry["domains"])
    for domain in domains:
        if not _HOST.match(domain):
            raise CatalogError(f"{where}: {domain!r} is not a lower-case host name")
        if domain in owner:
            raise CatalogError(f"{where}: domain {domain} already belongs to {owner[domain]}")
        owner[domain] = entry["id"]
    risk: dict[str, Any] = {}
    for name, fact in dict(entry.get("risk", {})).items():
        if name not in ATTRIBUTES and name not in DESCRIPTIVE:
            raise CatalogError(f"{where}: unknown risk attribute {name!r}")
        if (
            not isinstance(fact, dict)
            or "value" not in fact
            or not str(fact.get("source", "")).startswith("http")
        ):
            raise CatalogError(f"{where}: risk attribute {name} needs a value and a source URL")
        if fact["value"] == "unknown":
            raise CatalogError(f"{where}: leave an unknown attribute out instead of listing it")
        risk[name] = {"value": fact["value"], "source": fact["source"], "note": str(fact.get("note", ""))}
    return {
        "id": entry["id"],
        "name": entry["name"],
        "vendor": entry["vendor"],
        "category": entry["category"],
        "domains": sorted(domains),
        "risk": dict(sorted(risk.items())),
    }


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the shipped apps.json is stale")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print("apps.json is stale: run python -m trustplane.discovery.catalog.build", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(json.loads(text)['apps'])} apps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
