"""Chunked upload to the signed URL, as MCAS documents it for large files ("upload it in chunks … using the
Azure SDK"): the real Azure Storage SDK (azure-storage-blob) uploads a file in blocks to the URL
``upload_url`` returned; a block can be sent again to resume; bad block lists change nothing."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from azure.storage.blob import BlobClient

from tests.discovery.test_upload_api import mcas, wait_done
from tests.support.server import TenantHandle, TestServer

WRITE = "CloudApp-Discovery.ReadWrite.All"


def squid_log(lines: int) -> bytes:
    now = int(time.time()) - 600
    return "".join(
        f"{now + i % 300}.000 5 10.0.0.{i % 9 + 1} TCP_MISS/200 {i} GET https://www.dropbox.com/p/{i} "
        f"user{i % 11} HIER_DIRECT/198.51.100.7 -\n"
        for i in range(lines)
    ).encode()


def announce(client: httpx.Client) -> str:
    answer = client.get("/api/v1/discovery/upload_url/", params={"filename": "big.log", "source": "SQUID"})
    assert answer.json()["provider"] == "azure"
    return str(answer.json()["url"])


def finish(client: httpx.Client, url: str, stream: str) -> dict[str, object]:
    done = client.post("/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": stream})
    assert done.status_code == 200, done.text
    return wait_done(client, done.json()["uploadId"])


def block_id(n: int) -> str:
    return base64.b64encode(f"block-{n:06d}".encode()).decode()


def test_the_azure_sdk_uploads_a_file_in_blocks(server: TestServer, tenant: TenantHandle) -> None:
    data = squid_log(3000)  # ~300 kB in 16 kB blocks: many Put Block requests and one Put Block List
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = announce(client)
        blob = BlobClient.from_blob_url(url, max_single_put_size=16 * 1024, max_block_size=16 * 1024)
        blob.upload_blob(data, max_concurrency=2)
        result = finish(client, url, "azure sdk")
    assert result["status"] == "done" and result["size"] == len(data)
    assert result["result"]["linesRead"] == 3000 and result["result"]["parsed"] == 3000  # type: ignore[index]
    staged = server.scalar("SELECT path FROM discovery_uploads WHERE id = :u", u=result["id"])
    assert not Path(str(staged) + ".blocks").exists()


def put(url: str, query: dict[str, str], body: bytes) -> httpx.Response:
    """A PUT to the signed URL with more query parameters (kept beside its ``sig``)."""
    return httpx.put(f"{url}&{urlencode(query)}", content=body, timeout=30)


def stage(url: str, n: int, body: bytes) -> int:
    return put(url, {"comp": "block", "blockid": block_id(n)}, body).status_code


def test_a_block_sent_again_replaces_the_first_try(server: TestServer, tenant: TenantHandle) -> None:
    data = squid_log(500)
    half = len(data) // 2
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = announce(client)
        assert stage(url, 1, data[:half]) == 201
        assert stage(url, 2, data[half:-50]) == 201  # the first try broke off: a truncated block was stored
        assert stage(url, 2, data[half:]) == 201  # sent again
        entries = "".join(f"<Latest>{block_id(n)}</Latest>" for n in (1, 2))
        listed = f"<?xml version='1.0' encoding='utf-8'?><BlockList>{entries}</BlockList>"
        assert put(url, {"comp": "blocklist"}, listed.encode()).status_code == 201
        result = finish(client, url, "resumed")
    assert result["size"] == len(data) and result["result"]["parsed"] == 500  # type: ignore[index]


@pytest.mark.parametrize(
    ("params", "body", "detail"),
    [
        ({"comp": "block", "blockid": "not base64!"}, b"x", "base64"),
        ({"comp": "block", "blockid": base64.b64encode(b"x" * 65).decode()}, b"x", "64 bytes"),
        (
            {"comp": "blocklist"},
            b"<BlockList><Latest>" + block_id(9).encode() + b"</Latest></BlockList>",
            "not uploaded",
        ),
        ({"comp": "blocklist"}, b"<BlockList></BlockList>", "names no block"),
        ({"comp": "blocklist"}, b"<!DOCTYPE x [<!ENTITY a 'b'>]><BlockList/>", "not a <BlockList>"),
        ({"comp": "blocklist"}, b"\xff\xfe", "UTF-8"),
        ({"comp": "appendblock"}, b"x", "not supported"),
    ],
)
def test_bad_block_requests_answer_400_and_leave_the_upload_waiting(
    server: TestServer, tenant: TenantHandle, params: dict[str, str], body: bytes, detail: str
) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = announce(client)
        response = put(url, params, body)
        assert response.status_code == 400 and detail in response.json()["detail"], response.text
        done = client.post("/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": "x"})
    assert done.status_code == 400 and "not been uploaded" in done.json()["detail"]


def test_blocks_need_the_urls_secret(server: TestServer, tenant: TenantHandle) -> None:
    with mcas(server, tenant.api_token(WRITE)) as client:
        url = announce(client)
    forged = url.split("?sig=")[0] + "?sig=forged"
    assert stage(forged, 1, b"x") == 401
    assert (
        put(forged, {"comp": "blocklist"}, b"<BlockList><Latest>eA==</Latest></BlockList>").status_code == 401
    )
