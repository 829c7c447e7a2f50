"""Request bodies for every face: read within ``settings.max_body_bytes`` (declared or streamed), and JSON
objects refused clearly when empty, malformed, not an object or carrying U+0000. Each face renders the
resulting ``BadRequest`` / ``PayloadTooLarge`` in its own error dialect."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from trustplane.core.errors import BadRequest, PayloadTooLarge


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed the limit (never read whole first)."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object was expected.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if has_nul(body):  # PostgreSQL can neither store nor compare U+0000: bad input on every backend alike
        raise BadRequest("The request body contains a NUL character (\\u0000), which is not allowed.")
    return body


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, refused clearly when it is too large, malformed or not an object."""
    return parse_json_object(await read_body(request))


async def read_no_parameters(request: Request, action: str) -> None:
    """For an action that takes no parameters: an empty body or ``{}``; anything else is refused clearly."""
    raw = await read_body(request)
    if raw.strip() and parse_json_object(raw):
        raise BadRequest(f"{action} takes no parameters: send no body or an empty JSON object.")


def has_nul(body: Any) -> bool:
    pending = [body]  # iterative: JSON may nest deeper than Python's recursion limit
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
