"""Chunked upload to the signed URL, as MCAS documents it for files over 64 MB: Azure Blob Storage's block
blob protocol, which the Azure SDKs speak. ``PUT …&comp=block&blockid=<base64>`` stages one block;
``PUT …&comp=blocklist`` with ``<BlockList><Latest>id</Latest>…</BlockList>`` commits the listed blocks, in
that order, as the file. A block can be sent again (the last one wins), so a client resumes an interrupted
upload by staging only the blocks that failed. Files only; the HTTP side is in ``discovery.api``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from trustplane.core.errors import BadRequest, PayloadTooLarge

MAX_BLOCK_ID_BYTES = 64  # Azure: a block id is at most 64 bytes before base64 encoding
MAX_BLOCKS = 50_000  # Azure's limit per blob
_ENTRY = re.compile(r"<(Latest|Committed|Uncommitted)>\s*([^<]*?)\s*</\1>")


def block_dir(path: Path) -> Path:
    return path.with_name(path.name + ".blocks")


def block_path(path: Path, block_id: str) -> Path:
    """Where a staged block lives; the id is checked as Azure checks it and named by its hash."""
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("blockid must be a base64 string (InvalidQueryParameterValue).") from exc
    if not raw or len(raw) > MAX_BLOCK_ID_BYTES:
        raise BadRequest(f"blockid must encode 1 to {MAX_BLOCK_ID_BYTES} bytes (InvalidQueryParameterValue).")
    return block_dir(path) / hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Staged:
    count: int
    size: int


def staged(path: Path) -> Staged:
    """The blocks staged so far for the file at ``path``: how many, how many bytes."""
    directory = block_dir(path)
    if not directory.exists():
        return Staged(0, 0)
    sizes = [p.stat().st_size for p in directory.iterdir()]
    return Staged(len(sizes), sum(sizes))


def parse_block_list(body: bytes) -> list[str]:
    """The block ids of a Put Block List body, in order. Every listed block is taken from those staged
    (TrustPlane keeps no committed blocks apart: a blob here is written once)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("The block list is not UTF-8 XML (InvalidXmlDocument).") from exc
    if "<BlockList" not in text or "<!ENTITY" in text or "<!DOCTYPE" in text:
        raise BadRequest("The body is not a <BlockList> document (InvalidXmlDocument).")
    ids = [m.group(2) for m in _ENTRY.finditer(text)]
    if not ids:
        raise BadRequest("The block list names no block (InvalidBlockList).")
    if len(ids) > MAX_BLOCKS:
        raise BadRequest(f"A block list may name at most {MAX_BLOCKS} blocks (InvalidBlockList).")
    return ids


def commit(path: Path, block_ids: list[str], max_bytes: int) -> int:
    """Concatenate the listed blocks into ``path`` (via a temporary name) and drop the staged blocks.
    Returns the file's size. Nothing is written when a block is missing or the total is too large."""
    parts = [block_path(path, b) for b in block_ids]
    missing = [b for b, p in zip(block_ids, parts, strict=True) if not p.exists()]
    if missing:
        raise BadRequest(f"Block {missing[0]!r} was not uploaded (InvalidBlockList).")
    total = sum(p.stat().st_size for p in parts)
    if total > max_bytes:
        raise PayloadTooLarge("A log file may be at most 5 GB; split larger files.")
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as block:
                shutil.copyfileobj(block, out, 1 << 20)
    os.replace(partial, path)
    shutil.rmtree(block_dir(path), ignore_errors=True)
    return total
