"""WebAuthn / passkeys through py_webauthn: options for the browser and verification of its answers.
Registration asks for direct attestation so the authenticator's model (AAGUID) is known, and the tenant's
attestation policy decides whether that model may register. py_webauthn verifies the attestation statement's
signature; a chain to the vendor's root is checked only when root certificates are configured, so without
them the AAGUID is the one the authenticator asserts (an allow list, not a proof of origin)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from trustplane.idp.signin.models import WebAuthnCredential

RP_NAME = "TrustPlane"
TIMEOUT_MS = 120_000


class WebAuthnError(ValueError):
    """The answer does not verify, or the policy refuses the authenticator (the message is for the user)."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str  # the host name the browser sees
    origin: str  # scheme://host[:port]


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str
    fmt: str
    backed_up: bool
    transports: list[str]


def registration_options(
    rp: RelyingParty, user_id: str, user_name: str, display_name: str, existing: list[WebAuthnCredential]
) -> tuple[str, str]:
    """(options JSON for navigator.credentials.create, challenge base64url)."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=user_id.encode(),
        user_name=user_name,
        user_display_name=display_name or user_name,
        attestation=AttestationConveyancePreference.DIRECT,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id)) for c in existing
        ],
        timeout=TIMEOUT_MS,
    )
    return options_to_json(options), bytes_to_base64url(options.challenge)


def _parse(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise WebAuthnError("The security key's answer was not readable.") from exc
    if not isinstance(value, dict):
        raise WebAuthnError("The security key's answer was not readable.")
    return value


def verify_registration(
    rp: RelyingParty, challenge: str, body: str, allowed_aaguids: frozenset[str] | None
) -> NewCredential:
    """Verify a registration; ``allowed_aaguids`` None allows any authenticator model."""
    credential = _parse(body)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except InvalidRegistrationResponse as exc:
        raise WebAuthnError(f"The passkey could not be verified: {exc}") from exc
    except Exception as exc:  # malformed input of any shape (bad base64, CBOR, JSON types) is a refusal
        raise WebAuthnError("The passkey's answer was malformed.") from exc
    aaguid = str(verified.aaguid).lower()
    if allowed_aaguids is not None and aaguid not in allowed_aaguids:
        raise WebAuthnError(
            f"Your organisation does not allow this kind of security key (authenticator model {aaguid})."
        )
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        aaguid=aaguid,
        fmt=str(getattr(verified.fmt, "value", verified.fmt)),
        backed_up=bool(verified.credential_backed_up),
        transports=[str(t) for t in transports][:8] if isinstance(transports, list) else [],
    )


def authentication_options(rp: RelyingParty, allowed: list[WebAuthnCredential]) -> tuple[str, str]:
    """(options JSON for navigator.credentials.get, challenge). An empty ``allowed`` lets the browser offer
    any discoverable credential (passkey sign-in without a user name)."""
    options = generate_authentication_options(
        rp_id=rp.id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id)) for c in allowed
        ],
        user_verification=UserVerificationRequirement.REQUIRED,
        timeout=TIMEOUT_MS,
    )
    return options_to_json(options), bytes_to_base64url(options.challenge)


def credential_id_of(body: str) -> tuple[dict[str, Any], str]:
    credential = _parse(body)
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        raise WebAuthnError("The passkey's answer names no credential.")
    return credential, raw


def verify_authentication(
    rp: RelyingParty, challenge: str, credential: dict[str, Any], stored: WebAuthnCredential
) -> int:
    """Verify an assertion against the stored credential; returns the new signature counter."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=base64url_to_bytes(stored.public_key),
            credential_current_sign_count=stored.sign_count,
            require_user_verification=True,
        )
    except InvalidAuthenticationResponse as exc:
        raise WebAuthnError(f"The passkey could not be verified: {exc}") from exc
    except Exception as exc:  # malformed input of any shape is a refusal, never a server error
        raise WebAuthnError("The passkey's answer was malformed.") from exc
    return int(verified.new_sign_count)
