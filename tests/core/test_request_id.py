"""Every response carries exactly one ``request-id`` header — errors included, whose renderers set it
themselves — and a Graph error's body names the same id."""

from __future__ import annotations

import httpx

from tests.support.server import TenantHandle, TestServer


def test_one_request_id_per_response_on_every_face(server: TestServer, tenant: TenantHandle) -> None:
    with tenant.client() as client:
        answers = [
            client.get("/v1.0/users"),  # 200
            client.get("/v1.0/users/00000000-0000-0000-0000-000000000000"),  # Graph 404
            client.get("/v1.0/users?$filter=nonsense eq"),  # Graph 400
            client.get("/scim/v2/Users/nope"),  # SCIM error dialect
            client.get("/api/v1/discovery/streams/nope/"),  # MCAS dialect
        ]
    answers.append(httpx.get(f"{server.url}/v1.0/users"))  # 401 without a token
    answers.append(httpx.get(f"{server.url}/healthz"))
    for response in answers:
        ids = response.headers.get_list("request-id")
        assert len(ids) == 1 and ids[0], (response.request.url, response.status_code, ids)
    graph_error = answers[1].json()["error"]["innerError"]
    assert graph_error["request-id"] == answers[1].headers["request-id"]
    assert len({r.headers["request-id"] for r in answers}) == len(answers)
