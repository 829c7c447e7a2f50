"""The sign-in rules below the pages: a TOTP code works once and only within one step of drift, recovery
codes are 80-bit and stored as SHA-256, the passkey attestation policy (the default list, a tenant's own
list, the deployment's extra models, "any"), argon2id at OWASP's parameters with rehash of older hashes,
and the strict return_to check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from argon2 import PasswordHasher

from trustplane.auth.secrets import PASSWORD_HASHER, hash_password
from trustplane.idp.signin import password, recovery, totp
from trustplane.idp.signin.aaguids import DEFAULT_ALLOWED
from trustplane.idp.signin.models import SignInPolicy
from trustplane.idp.signin.pages import safe_return_to
from trustplane.idp.signin.service import allowed_aaguids, csrf_token, csrf_valid

NOW = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)


def test_totp_code_is_accepted_once_and_within_one_step_of_drift() -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    step = totp.matching_step(secret, code, NOW)
    assert step is not None
    assert totp.matching_step(secret, code, NOW, after_step=step) is None  # replay refused
    assert totp.matching_step(secret, code, NOW + timedelta(seconds=30)) == step  # one step late: fine
    assert totp.matching_step(secret, code, NOW + timedelta(seconds=90)) is None  # three steps: refused
    assert (
        totp.matching_step(secret, "12345", NOW) is None and totp.matching_step(secret, "abcdef", NOW) is None
    )


def test_recovery_codes_are_80_bit_unique_and_hashed_case_and_dash_insensitively() -> None:
    codes = recovery.new_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(recovery.normalise(c)) == 16 for c in codes)  # 16 base32 characters = 80 bits
    assert recovery.code_hash(codes[0]) == recovery.code_hash(codes[0].lower().replace("-", " "))
    assert recovery.code_hash(codes[0]) != recovery.code_hash(codes[1])


def _policy(aaguids: list[str] | None) -> SignInPolicy:
    return SignInPolicy(tenant_id="t", allowed_aaguids=aaguids, lockout_threshold=10, lockout_seconds=60)


def test_attestation_policy_default_tenant_list_extra_models_and_any() -> None:
    virtual = "01020304-0506-0708-0102-030405060708"  # Chromium's virtual authenticator, as it reports itself
    default = allowed_aaguids(_policy(None), [])
    assert default == frozenset(DEFAULT_ALLOWED) and virtual not in default
    assert virtual in allowed_aaguids(_policy(None), [virtual.upper()])  # the deployment's setting
    own = allowed_aaguids(_policy(["2fc0579f-8113-47ea-b116-bb5a8db9202a"]), [])
    assert own == frozenset({"2fc0579f-8113-47ea-b116-bb5a8db9202a"})
    assert allowed_aaguids(_policy([]), []) is None  # an empty list: any authenticator


def test_default_list_holds_only_well_formed_aaguids() -> None:
    for aaguid in DEFAULT_ALLOWED:
        parts = aaguid.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12] and aaguid == aaguid.lower()
        int(aaguid.replace("-", ""), 16)


def test_passwords_use_argon2id_at_owasp_parameters_and_old_hashes_are_rehashed() -> None:
    hashed = hash_password("Correct-Horse-42")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert password.verify_password_sync(hashed, "Correct-Horse-42")
    assert not password.verify_password_sync(hashed, "correct-horse-42")
    assert not password.verify_password_sync(None, "anything")  # no hash: refused (after a dummy verify)
    assert not password.needs_rehash(hashed)
    assert password.needs_rehash(PasswordHasher().hash("x"))  # the library default (64 MiB) is not ours
    assert PASSWORD_HASHER.type.name == "ID"


def test_csrf_token_is_bound_to_the_pre_auth_cookie() -> None:
    assert csrf_valid("cookie-a", csrf_token("cookie-a"))
    assert not csrf_valid("cookie-b", csrf_token("cookie-a"))
    assert not csrf_valid("cookie-a", "") and not csrf_valid(None, csrf_token("cookie-a"))


T = "0f6e2d9c-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "value",
    [
        f"/{T}/oauth2/v2.0/authorize?client_id=x&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        f"/{T}/signin/security-info",
    ],
)
def test_return_to_accepts_paths_under_the_tenant(value: str) -> None:
    assert safe_return_to(value, T) == value


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        f"/{T}/..%2f..%2fevil",
        f"/{T}/%2e%2e/x",
        f"/{T}//evil.example",
        f"/{T}/x#frag",
        f"/{T}/x\nLocation: https://evil.example",
        f"/{T}/x\x00",
        f"/{T}-other/x",
        "/other/x",
        "",
        "/" + T + "/" + "a" * 5000,
    ],
)
def test_return_to_refuses_anything_that_could_leave_the_tenant(value: str) -> None:
    assert safe_return_to(value, T) is None
