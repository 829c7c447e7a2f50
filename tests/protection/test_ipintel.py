"""IP intelligence from the packaged data (country from iptocc, Tor / VPN ranges from iporigin), the
admin's newer range files loaded with ``trustplane protection load-ip-data``, and the other protection
commands (threat-intelligence ranges, leaked-password hashes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import TestServer
from trustplane.protection import ipintel


def run_cli(*args: str, data_dir: Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPLANE_DATA_DIR": str(data_dir), "TRUSTPLANE_LOG_LEVEL": "warning"}
    if database_url:
        env["TRUSTPLANE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "trustplane.cli", "protection", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_packaged_data_knows_a_tor_exit_and_its_country() -> None:
    info = ipintel.IpIntel(None).lookup("185.220.101.1")
    assert (info.country, info.anonymizer, info.is_private) == ("DE", "tor", False)


def test_private_and_unparsable_addresses_have_no_location() -> None:
    intel = ipintel.IpIntel(None)
    for address in ("10.1.2.3", "192.168.0.1", "127.0.0.1", "fd00::1", "100.64.0.1"):
        info = intel.lookup(address)
        assert info.is_private and info.country is None and info.anonymizer is None, address
    assert intel.lookup("not-an-ip") == ipintel.IpInfo(None, None, False, None)
    assert intel.lookup(None) == ipintel.IpInfo(None, None, False, None)


def test_an_ordinary_address_is_not_an_anonymiser() -> None:
    info = ipintel.IpIntel(None).lookup("81.2.69.160")
    assert info.anonymizer is None and info.country == "GB" and info.asn is None


def test_a_remembered_lookup_answers_as_a_fresh_one_and_new_data_is_a_new_memory(tmp_path: Path) -> None:
    intel = ipintel.IpIntel(None)
    addresses = ["185.220.101.1", "81.2.69.160", "10.1.2.3", "2001:db8::1", "bad", None, " 81.2.69.160 "]
    first = [intel.lookup(a) for a in addresses]
    assert first == [intel.resolve(a) for a in addresses]
    assert [intel.lookup(a) for a in addresses] == first  # the second time from memory, same answers
    # An admin's newer file takes effect through configure(): a new instance, nothing remembered from before.
    data = tmp_path / ipintel.DATA_SUBDIR
    data.mkdir()
    (data / ipintel.COUNTRY_FILE).write_text("81.2.69.0,81.2.69.255,IE\n")
    try:
        assert ipintel.configure(data).lookup("81.2.69.160").country == "IE"
        assert ipintel.current().lookup("81.2.69.160").country == "IE"
    finally:
        ipintel.configure(None)


def test_load_ip_data_installs_an_asn_file_that_lookups_use(tmp_path: Path) -> None:
    source = tmp_path / "asn.csv"
    source.write_text("start,end,asn\n81.2.69.0,81.2.69.255,20712\n2001:db8::,2001:db8::ffff,64500\n")
    result = run_cli("load-ip-data", str(source), "--kind", "asn", "--json", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"kind": "asn", "ranges": 2}
    intel = ipintel.IpIntel(tmp_path / "data" / ipintel.DATA_SUBDIR)
    assert intel.lookup("81.2.69.160").asn == 20712
    assert intel.lookup("81.2.70.1").asn is None


def test_load_ip_data_country_file_overrides_the_packaged_country(tmp_path: Path) -> None:
    source = tmp_path / "country.csv"
    source.write_text("81.2.69.0,81.2.69.255,ie\n")
    assert (
        run_cli("load-ip-data", str(source), "--kind", "country", data_dir=tmp_path / "data").returncode == 0
    )
    intel = ipintel.IpIntel(tmp_path / "data" / ipintel.DATA_SUBDIR)
    assert intel.lookup("81.2.69.160").country == "IE"
    assert intel.lookup("185.220.101.1").country == "DE"


def test_load_ip_data_refuses_a_bad_file_and_installs_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("81.2.69.0,81.2.69.255,1\n81.2.70.9,81.2.70.1,2\n")
    result = run_cli("load-ip-data", str(source), "--kind", "asn", data_dir=tmp_path / "data")
    assert result.returncode == 2 and "line 2" in result.stderr
    assert not (tmp_path / "data" / ipintel.DATA_SUBDIR / ipintel.ASN_FILE).exists()
    missing = run_cli("load-ip-data", str(tmp_path / "nope.csv"), data_dir=tmp_path / "data")
    assert missing.returncode == 2


def test_threat_intel_and_leaked_hash_commands_write_the_tenants_lists(
    server: TestServer, tmp_path: Path
) -> None:
    tenant = server.tenant()
    listed = run_cli(
        "threat-intel",
        "45.83.64.0/24",
        "198.51.100.7",
        "--kind",
        "malicious",
        "--tenant",
        tenant.domain,
        "--json",
        data_dir=tmp_path,
        database_url=server.database_url,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"kind": "malicious", "ranges": 2}
    hashes = tmp_path / "pwned.txt"
    hashes.write_text(
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3730471\n7C4A8D09CA3762AF61E59520943DC26494F8941B:123\n"
    )
    imported = run_cli(
        "import-leaked",
        str(hashes),
        "--tenant",
        tenant.domain,
        "--json",
        data_dir=tmp_path,
        database_url=server.database_url,
    )
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"added": 2}
    assert (
        server.scalar("SELECT count(*) FROM threat_intel_addresses WHERE tenant_id = :t", t=tenant.tenant_id)
        == 2
    )
    bad = run_cli(
        "threat-intel",
        "not-an-ip",
        "--tenant",
        tenant.domain,
        data_dir=tmp_path,
        database_url=server.database_url,
    )
    assert bad.returncode == 2 and "not an IP address" in bad.stderr


def test_age_out_command_runs_for_a_tenant(server: TestServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    result = run_cli(
        "age-out", "--tenant", tenant.domain, "--json", data_dir=tmp_path, database_url=server.database_url
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"changed": 0}
