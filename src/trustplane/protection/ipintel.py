"""IP intelligence, offline, from permissively licensed data that ships in packages: the country from
``iptocc`` (MIT OR Apache-2.0; the five regional internet registries' delegation files) and Tor exit / VPN
provider ranges from ``iporigin`` (MIT; its NOTICE lists the sources). No package with permissively
licensed ASN data exists on PyPI, so the ASN comes from the sign-in record when its identity provider
supplies one, or from a range file the admin loads (``trustplane protection load-ip-data``: CSV rows
``first,last,asn`` or ``first,last,country``, e.g. the CC BY 4.0 RouteViews / DB-IP Lite ASN export), which
also overrides the packaged country data with a newer file."""

from __future__ import annotations

import bisect
import csv
import ipaddress
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import iporigin
import iptocc
from iporigin.core import dataset as origin_ranges

DATA_SUBDIR = "ip-intel"  # inside the data directory
LOOKUP_CACHE = 65536  # addresses whose answer an ``IpIntel`` remembers
ASN_FILE = "asn.csv"
COUNTRY_FILE = "country.csv"


@dataclass(frozen=True, slots=True)
class IpInfo:
    country: str | None
    asn: int | None
    is_private: bool
    anonymizer: str | None  # "tor" | "vpn"


class RangeTable:
    """Disjoint address ranges -> a value, looked up by bisection (IPv4 and IPv6 as integers, kept apart)."""

    def __init__(self, rows: list[tuple[int, int, int, str]]) -> None:
        rows.sort()
        self._keys = [(version, first) for version, first, _, _ in rows]
        self._rows = rows

    @classmethod
    def from_csv(cls, path: Path) -> RangeTable:
        rows: list[tuple[int, int, int, str]] = []
        with path.open(newline="", encoding="utf-8") as handle:
            for line_no, record in enumerate(csv.reader(handle), 1):
                if not record or record[0].startswith("#"):
                    continue
                if len(record) < 3:
                    raise ValueError(f"{path.name} line {line_no}: expected first,last,value")
                try:
                    first = ipaddress.ip_address(record[0].strip())
                    last = ipaddress.ip_address(record[1].strip())
                except ValueError as exc:
                    if line_no == 1:
                        continue  # a header row
                    raise ValueError(f"{path.name} line {line_no}: {exc}") from exc
                if first.version != last.version or int(last) < int(first):
                    raise ValueError(f"{path.name} line {line_no}: not an address range")
                rows.append((first.version, int(first), int(last), record[2].strip()))
        if not rows:
            raise ValueError(f"{path.name}: no ranges")
        return cls(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        key = (address.version, int(address))
        i = bisect.bisect_right(self._keys, key) - 1
        if i < 0:
            return None
        version, first, last, value = self._rows[i]
        return value if version == address.version and first <= int(address) <= last else None


class IpIntel:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.asn: RangeTable | None = None
        self.country: RangeTable | None = None
        if data_dir is not None:
            if (data_dir / ASN_FILE).exists():
                self.asn = RangeTable.from_csv(data_dir / ASN_FILE)
            if (data_dir / COUNTRY_FILE).exists():
                self.country = RangeTable.from_csv(data_dir / COUNTRY_FILE)
        self._remembered = lru_cache(maxsize=LOOKUP_CACHE)(self.resolve)

    def lookup(self, ip: str | None) -> IpInfo:
        """``resolve``, remembered per address: an instance's data never changes (``configure`` makes a new
        instance for a newer file) and sign-ins come back from the same addresses; a first lookup parses the
        address and asks three tables (tens of microseconds), a remembered one is a dictionary hit."""
        return self._remembered(ip)

    def forget(self) -> None:
        """Drop every remembered answer (a benchmark's cold start)."""
        self._remembered.cache_clear()

    def resolve(self, ip: str | None) -> IpInfo:
        address = parse(ip)
        if address is None:
            return IpInfo(None, None, False, None)
        if not address.is_global:
            return IpInfo(None, None, True, None)
        country = self.country.get(address) if self.country is not None else None
        if country is None:
            country = iptocc.country_code(str(address))
        asn_text = self.asn.get(address) if self.asn is not None else None
        # The bundled ranges asked directly (what ``iporigin.classify`` does after parsing the address and
        # checking it is global, both done above): (provider, kind) or None.
        found = origin_ranges().find(int(address), address.version)
        anonymizer = found[1] if found is not None and found[1] in iporigin.ANONYMIZER_KINDS else None
        return IpInfo(
            country.upper() if country else None,
            int(asn_text) if asn_text and asn_text.isdigit() else None,
            False,
            anonymizer,
        )


@lru_cache(maxsize=65536)
def parse(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip.strip())
    except ValueError:
        return None


def install(data_dir: Path, source: Path, kind: str) -> int:
    """Validate an admin-supplied range file and put it where ``IpIntel`` reads it; the number of ranges."""
    if kind not in ("asn", "country"):
        raise ValueError("kind must be 'asn' or 'country'")
    table = RangeTable.from_csv(source)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / (ASN_FILE if kind == "asn" else COUNTRY_FILE)
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return len(table)


_CURRENT: list[IpIntel] = []


def configure(data_dir: Path | None) -> IpIntel:
    """Load the process's IP intelligence (the packaged data plus the admin's files in ``data_dir``)."""
    intel = IpIntel(data_dir)
    _CURRENT[:] = [intel]
    return intel


def current() -> IpIntel:
    if not _CURRENT:
        _CURRENT.append(IpIntel(None))
    return _CURRENT[0]
