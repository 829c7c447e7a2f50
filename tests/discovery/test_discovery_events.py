"""The events discovery emits for other parts (alert policies): ``discovery.app.discovered`` once per tenant
and app however many lines, slices, uploads and reports mention it; ``discovery.upload.processed`` once per
finished upload with its counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.discovery.test_processing import make_upload, run_slices
from tests.discovery.test_upload_api import mcas, upload
from tests.support.server import TenantHandle, TestServer

WRITE = "CloudApp-Discovery.ReadWrite.All"


def squid(user: str, host: str, n: int) -> list[str]:
    now = int(time.time()) - 3600
    return [
        f"{now + i}.000 5 10.0.0.{i % 5 + 1} TCP_MISS/200 {100 + i} GET https://{host}/p/{i} {user} "
        f"HIER_DIRECT/198.51.100.1 -"
        for i in range(n)
    ]


def events(server: TestServer, tenant_id: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    rows = server.rows(
        "SELECT subject_id, data FROM events WHERE tenant_id = :t AND type = :k ORDER BY created_at, id",
        t=tenant_id,
        k=kind,
    )
    return [(str(s), d if isinstance(d, dict) else json.loads(d)) for s, d in rows]


def test_a_new_app_is_announced_once_per_tenant(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    first = tmp_path / "first.log"
    first.write_text("\n".join([*squid("alice", "www.dropbox.com", 300), *squid("bob", "mega.nz", 5)]) + "\n")
    second = tmp_path / "second.log"
    lines = [*squid("carol", "www.dropbox.com", 50), *squid("carol", "app.slack.com", 2)]
    second.write_text("\n".join(lines) + "\n")
    with mcas(server, tenant.api_token(WRITE)) as client:
        done = upload(client, first, "SQUID", "gateway", form=False)
        assert done["status"] == "done"
        discovered = events(server, tenant.tenant_id, "discovery.app.discovered")
        assert sorted(s for s, _ in discovered) == ["dropbox", "mega"]
        dropbox = dict(discovered)["dropbox"]
        assert dropbox["name"] == "Dropbox" and dropbox["transactionCount"] == 300
        assert dropbox["userCount"] == 1 and dropbox["riskScore"] == 10 and dropbox["status"] is None
        assert dropbox["streamId"] == done["streamId"] and dropbox["uploadId"] == done["id"]
        # Another upload into another report of the same tenant: only Slack is new.
        upload(client, second, "SQUID", "branch office", form=False)
    discovered = events(server, tenant.tenant_id, "discovery.app.discovered")
    assert sorted(s for s, _ in discovered) == ["dropbox", "mega", "slack"]
    # Another tenant discovering Dropbox gets its own announcement.
    other = server.tenant()
    with mcas(server, other.api_token(WRITE)) as client:
        upload(client, first, "SQUID", "gateway", form=False)
    theirs = events(server, other.tenant_id, "discovery.app.discovered")
    assert sorted(s for s, _ in theirs) == ["dropbox", "mega"]


def test_an_upload_split_into_slices_announces_each_app_once(
    server: TestServer, tenant: TenantHandle, tmp_path: Path
) -> None:
    upload_id = make_upload(server, tenant, "squid.log", "SQUID", tmp_path)
    slices = run_slices(server, tenant.tenant_id, upload_id, max_lines=2)
    assert slices > 2
    discovered = [s for s, _ in events(server, tenant.tenant_id, "discovery.app.discovered")]
    assert discovered and len(discovered) == len(set(discovered))
    apps = server.rows(
        "SELECT DISTINCT app_id FROM discovery_aggregates WHERE tenant_id = :t", t=tenant.tenant_id
    )
    assert sorted(discovered) == sorted(str(a) for (a,) in apps)


def test_a_finished_upload_emits_its_counts(server: TestServer, tenant: TenantHandle, tmp_path: Path) -> None:
    path = tmp_path / "counts.log"
    path.write_text("\n".join([*squid("alice", "github.com", 7), "not a squid line"]) + "\n")
    with mcas(server, tenant.api_token(WRITE)) as client:
        done = upload(client, path, "SQUID", "counts", form=True)
    ((subject, data),) = events(server, tenant.tenant_id, "discovery.upload.processed")
    assert subject == done["id"] and data["stream"] == "counts"
    assert (data["linesRead"], data["parsed"], data["rejected"]) == (8, 7, 1)
    assert data["sizeInBytes"] == path.stat().st_size
