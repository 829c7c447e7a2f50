from pathlib import Path

import pytest

from trustplane.discovery.catalog import Catalog, registrable_domain, shipped_catalog
from trustplane.discovery.catalog.build import CATEGORIES, CatalogError, build, main, render


def _catalog(*apps: tuple[str, list[str]]) -> Catalog:
    return Catalog.from_data(
        {
            "apps": [
                {"id": i, "name": i, "vendor": "v", "category": "Cloud storage", "domains": d, "risk": {}}
                for i, d in apps
            ]
        }
    )


def test_shipped_file_is_what_the_build_script_produces() -> None:
    assert main(["--check"]) == 0


def test_every_shipped_risk_attribute_carries_a_source() -> None:
    catalog = shipped_catalog()
    assert len(catalog.apps) >= 40
    for app in catalog.apps.values():
        assert app.category in CATEGORIES
        for fact in app.risk.values():
            assert fact["source"].startswith("http") and fact["value"] != "unknown"


def test_subdomain_matches_its_registrable_domain_entry() -> None:
    assert shipped_catalog().match("content.dropboxapi.com").id == "dropbox"  # type: ignore[union-attr]
    assert shipped_catalog().match("WWW.Dropbox.com.").id == "dropbox"  # type: ignore[union-attr]


def test_longest_entry_wins_over_a_shorter_parent() -> None:
    catalog = _catalog(("google", ["google.com"]), ("drive", ["drive.google.com"]))
    assert catalog.match("drive.google.com").id == "drive"  # type: ignore[union-attr]
    assert catalog.match("x.drive.google.com").id == "drive"  # type: ignore[union-attr]
    assert catalog.match("mail.google.com").id == "google"  # type: ignore[union-attr]


def test_match_stops_at_the_registrable_domain() -> None:
    # "co.uk" is a public suffix: an entry for it must not swallow every .co.uk site
    catalog = _catalog(("suffix", ["co.uk"]), ("deep", ["blob.core.windows.net"]))
    assert catalog.match("example.co.uk") is None
    assert catalog.match("acct.blob.core.windows.net").id == "deep"  # type: ignore[union-attr]
    assert catalog.match("core.windows.net") is None


def test_unknown_domain_ip_and_single_label_host_are_unmatched() -> None:
    catalog = shipped_catalog()
    assert catalog.match("files.unlisted-share.net") is None
    assert catalog.match("198.51.100.20") is None
    assert catalog.match("intranet") is None


def test_registrable_domain_uses_the_bundled_suffix_list_offline() -> None:
    assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
    assert registrable_domain("10.1.2.3") is None


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "apps.toml").write_text(text)
    return tmp_path


APP = 'id = "a"\nname = "A"\nvendor = "V"\ncategory = "Cloud storage"\n'


@pytest.mark.parametrize(
    "text",
    [
        '[[app]]\nid = "a"\nname = "A"\nvendor = "V"\ncategory = "Storage things"\ndomains = ["a.com"]\n',
        f'[[app]]\n{APP}domains = ["A.com"]\n',
        f'[[app]]\n{APP}domains = ["a.com"]\n[[app]]\n{APP.replace("a", "b", 1)}domains = ["a.com"]\n',
        f'[[app]]\n{APP}domains = ["a.com"]\n[app.risk.isSoc2Compliant]\nvalue = true\n',
        f'[[app]]\n{APP}domains = ["a.com"]\n[app.risk.isMagic]\nvalue = true\nsource = "https://x"\n',
        f'[[app]]\n{APP}domains = ["a.com"]\n[app.risk.isSoc2Compliant]\nvalue = "unknown"\nsource = "https://x"\n',
    ],
    ids=[
        "bad-category",
        "upper-case-domain",
        "domain-twice",
        "fact-without-source",
        "unknown-attr",
        "unknown",
    ],
)
def test_build_refuses_unsourced_or_malformed_entries(tmp_path: Path, text: str) -> None:
    with pytest.raises(CatalogError):
        build(_write(tmp_path, text))


def test_build_keeps_a_sourced_fact_with_its_citation(tmp_path: Path) -> None:
    text = (
        f'[[app]]\n{APP}domains = ["a.com"]\n[app.risk.isSoc2Compliant]\n'
        'value = true\nsource = "https://v.example/trust"\nnote = "n"\n'
    )
    built = build(_write(tmp_path, text))
    assert built["apps"][0]["risk"] == {
        "isSoc2Compliant": {"value": True, "source": "https://v.example/trust", "note": "n"}
    }
    assert render(built).endswith("\n")
