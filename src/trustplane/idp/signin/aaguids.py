"""The default list of authenticator models (AAGUIDs) allowed to register, used when a tenant has not set
its own: FIDO2 security keys of Yubico and Feitian, both vendors of Microsoft-compatible FIDO2 security keys
(the project's seeds point at Microsoft's "Become a Microsoft-compatible FIDO2 security key vendor").
Only AAGUIDs with a source are listed; each source is cited beside its entries."""

from __future__ import annotations

# Yubico, "YubiKey Hardware FIDO2 AAGUIDs" (support.yubico.com), as tabulated with firmware versions in
# https://blog.workinghardinit.work/category/identity/ ("FIDO2 AAGUID lists").
YUBICO = {
    "cb69481e-8ff7-4039-93ec-0a2729a154a8": "YubiKey 5 series (USB-A/Nano/5C/5C Nano), firmware 5.1",
    "ee882879-721c-4913-9775-3dfcce97072a": "YubiKey 5 series (USB-A/Nano/5C/5C Nano), firmware 5.2, 5.4",
    "fa2b99dc-9e39-4257-8f92-4a30d23c4118": "YubiKey 5 NFC, firmware 5.1",
    "2fc0579f-8113-47ea-b116-bb5a8db9202a": "YubiKey 5 NFC / 5C NFC, firmware 5.2, 5.4",
    "c1f9a0bc-1dd2-404a-b27f-8e29047a43fd": "YubiKey 5 NFC FIPS / 5C NFC FIPS, firmware 5.4",
    "73bb0cd4-e502-49b8-9c6f-b59445bf720b": "YubiKey 5 Nano FIPS / 5C FIPS / 5C Nano FIPS, firmware 5.4",
    "c5ef55ff-ad9a-4b9f-b580-adebafe026d0": "YubiKey 5Ci, firmware 5.2, 5.4",
}

# Feitian FIDO2 AAGUIDs, from the same page ("FEITIAN FIDO2 AAGUID lists").
FEITIAN = {
    "2c0df832-92de-4be1-8412-88a8f074df4a": "Feitian FIDO Java card",
    "8c97a730-3f7b-41a6-87d6-1e9b62bda6f0": "Feitian FIDO fingerprint card",
    "310b2830-bd4a-4da5-832e-9a0dfc90abf2": "Feitian MultiPass FIDO",
    "6e22415d-7fdf-4ea4-8a0c-dd60c4249b9d": "Feitian iePass FIDO",
    "833b721a-ff5f-4d00-bb2e-bdda3ec01e29": "Feitian ePass FIDO",
    "ee041bce-25e5-4cdb-8f86-897fd6418464": "Feitian ePass FIDO NFC",
    "77010bd7-212a-4fc9-b236-d2ca5e9d4084": "Feitian BioPass K26/K27/K45",
    "b6ede29c-3772-412c-8a78-539c1f4c62d2": "Feitian BioPass K26/K27/K45 Plus",
}

DEFAULT_ALLOWED: dict[str, str] = {**YUBICO, **FEITIAN}
