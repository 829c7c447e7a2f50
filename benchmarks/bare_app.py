"""The yardstick: a bare FastAPI app with one GET endpoint (no database, no auth, no middleware) returning a
JSON object the size of a Graph user, served by uvicorn exactly as ``trustplane serve`` serves TrustPlane
(one process, ``uvicorn.run`` defaults, i.e. uvloop and httptools, log level warning, no access log).

    python benchmarks/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI(title="bare")

# Same keys and value sizes as TrustPlane's default user rendering (GET /v1.0/users/{id}).
TEMPLATE = {
    "@odata.context": "http://127.0.0.1:8000/v1.0/$metadata#users/$entity",
    "businessPhones": ["+1 555 0142"],
    "displayName": "Grace Hopper",
    "givenName": "Grace",
    "jobTitle": "Engineer",
    "mail": "grace.hopper.142@demo.trustplane.local",
    "mobilePhone": None,
    "officeLocation": None,
    "preferredLanguage": None,
    "surname": "Hopper",
    "userPrincipalName": "grace.hopper.142@demo.trustplane.local",
}


@app.get("/v1.0/users/{user_id}")
async def get_user(user_id: str) -> Response:
    return Response(orjson.dumps({**TEMPLATE, "id": user_id}), media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # The same call `trustplane serve` makes (src/trustplane/cli.py), so the server stack is identical.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
