"""Cloud discovery data anonymisation, as MCAS's anonymizer describes it: a report (data source) marked
anonymised keeps no user name (and, when asked, no source IP address) — each is replaced at ingest by a
deterministic encryption under a key of the tenant, so the same user is the same token across the tenant's
reports and the report still counts users. An admin with ``CloudApp-Discovery.Deanonymize`` resolves a token
back to the name (or a name to its token) with a justification; every resolution is an audited event.

Deterministic authenticated encryption (AES-SIV, RFC 5297, from ``cryptography``) rather than a keyed hash,
so that resolving needs no table of every name seen: the token itself carries the name, readable only with
the tenant's key. A token is ``anon-`` + unpadded base64url; the kind (user or IP address) is bound in as
associated data, so a user token does not resolve as an IP address.

Columns bound the clear text: a user name is encrypted from its first 172 bytes (its token then fits the
256-character column) and an IP address from its packed form (anything not an IP address from its first 26
bytes)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

PREFIX = "anon-"
USER = "user"
IP_ADDRESS = "ipAddress"
KINDS = (USER, IP_ADDRESS)
MAX_USER_BYTES = 172
MAX_OTHER_ADDRESS_BYTES = 26
_IPV4, _IPV6, _TEXT = b"\x04", b"\x06", b"\x00"


class NotAToken(ValueError):
    """The value is not a token this tenant's key made for that kind."""


def new_key() -> str:
    """A fresh tenant key (AES-SIV with 256 bits: AES-128 for each of its two halves), base64."""
    return base64.b64encode(AESSIV.generate_key(256)).decode()


def _cut(data: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of UTF-8 text, never splitting a character."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Anonymizer:
    key: bytes

    @classmethod
    def from_key(cls, key: str) -> Anonymizer:
        return cls(base64.b64decode(key))

    def _encrypt(self, kind: str, plain: bytes) -> str:
        return PREFIX + _b64(AESSIV(self.key).encrypt(plain, [kind.encode()]))

    def _decrypt(self, kind: str, token: str) -> bytes:
        if not token.startswith(PREFIX):
            raise NotAToken(f"{token!r} is not an anonymised value.")
        try:
            return AESSIV(self.key).decrypt(_unb64(token[len(PREFIX) :]), [kind.encode()])
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise NotAToken(f"{token!r} is not an anonymised {kind} of this tenant.") from exc

    def user(self, name: str) -> str:
        return self._encrypt(USER, _cut(name.encode(), MAX_USER_BYTES))

    def ip_address(self, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
            plain = (_IPV4 if address.version == 4 else _IPV6) + address.packed
        except ValueError:
            plain = _TEXT + _cut(value.encode(), MAX_OTHER_ADDRESS_BYTES)
        return self._encrypt(IP_ADDRESS, plain)

    def anonymize(self, kind: str, value: str) -> str:
        return self.user(value) if kind == USER else self.ip_address(value)

    def resolve(self, kind: str, token: str) -> str:
        plain = self._decrypt(kind, token)
        if kind == USER:
            return plain.decode()
        tag, body = plain[:1], plain[1:]
        if tag in (_IPV4, _IPV6):
            return str(ipaddress.ip_address(body))
        return body.decode()

    def frame(self, apps: pl.DataFrame, *, users: bool, ip_addresses: bool) -> pl.DataFrame:
        """A slice's sums with names (and addresses) replaced, each distinct value encrypted once; sums of
        rows that now share a key (two names cut to the same 172 bytes) are added up."""
        if apps.height == 0:
            return apps
        columns: list[Any] = []
        if users:
            columns.append(self._column(apps, "user_name", self.user))
        if ip_addresses:
            columns.append(self._column(apps, "ip_address", self.ip_address))
        if not columns:
            return apps
        keys = [c for c in ("app_id", "user_name", "ip_address", "day") if c in apps.columns]
        sums = [c for c in apps.columns if c not in keys]
        return apps.with_columns(columns).group_by(keys).agg(pl.sum(*sums))

    @staticmethod
    def _column(apps: pl.DataFrame, name: str, encrypt: Any) -> pl.Expr:
        distinct = [v for v in apps.get_column(name).unique().to_list() if v]
        mapping = {v: encrypt(v) for v in distinct}
        return pl.col(name).replace_strict(mapping, default=pl.col(name), return_dtype=pl.String)
