"""Block scripts: one renderer, a template per appliance, keyed by MCAS's ``format`` number (the appliance's
log-type id). Each blocks the domains of the tenant's unsanctioned apps, every domain with its subdomains,
in the appliance's own configuration syntax."""

from __future__ import annotations

import re
from collections.abc import Callable

OBJECT_NAME = "TrustPlane-Unsanctioned"


def bluecoat(domains: list[str]) -> str:
    """ProxySG CPL, as MCAS's own sample: one ``url.domain=… deny`` rule per domain."""
    return "".join(f"url.domain={d} deny\n" for d in domains)


def websense(domains: list[str]) -> str:
    return "".join(f"dest_host={d} action=deny\n" for d in domains)


def _regex(domain: str) -> str:
    return r"(^|\.)" + re.escape(domain).replace(r"\-", "-") + "$"


def cisco_asa(domains: list[str]) -> str:
    """ASA HTTP inspection: a regex per domain on the Host header, a class map matching any, and an
    inspection policy that drops and logs."""
    lines = [f'regex {OBJECT_NAME}-{i} "{_regex(d)}"' for i, d in enumerate(domains, 1)]
    lines.append(f"class-map type regex match-any {OBJECT_NAME}-domains")
    lines += [f" match regex {OBJECT_NAME}-{i}" for i in range(1, len(domains) + 1)]
    lines += [
        f"class-map type inspect http match-all {OBJECT_NAME}-class",
        f" match request header host regex class {OBJECT_NAME}-domains",
        f"policy-map type inspect http {OBJECT_NAME}-policy",
        " parameters",
        f" class {OBJECT_NAME}-class",
        "  drop-connection log",
    ]
    return "\n".join(lines) + "\n"


def fortigate(domains: list[str]) -> str:
    """FortiOS web filter URL filter: a wildcard entry per domain and one for its subdomains."""
    lines = [
        "config webfilter urlfilter",
        "    edit 0",
        f'        set name "{OBJECT_NAME}"',
        "        config entries",
    ]
    entry = 0
    for domain in domains:
        for url in (domain, f"*.{domain}"):
            entry += 1
            lines += [
                f"            edit {entry}",
                f'                set url "{url}"',
                "                set type wildcard",
                "                set action block",
                "            next",
            ]
    lines += ["        end", "    next", "end"]
    return "\n".join(lines) + "\n"


def palo_alto(domains: list[str]) -> str:
    """PAN-OS CLI: a custom URL category (URL list) to reference from a URL filtering profile."""
    entries = " ".join(f"{d} *.{d}" for d in domains)
    return (
        f'set profiles custom-url-category {OBJECT_NAME} type "URL List"\n'
        f"set profiles custom-url-category {OBJECT_NAME} list [ {entries} ]\n"
    )


def zscaler(domains: list[str]) -> str:
    """A custom URL category list; a leading dot covers the domain and its subdomains in Zscaler."""
    return "".join(f".{d}\n" for d in domains)


def juniper_srx(domains: list[str]) -> str:
    patterns = " ".join(f'"http://{d}" "https://{d}" "http://*.{d}" "https://*.{d}"' for d in domains)
    return (
        f"set security utm custom-objects url-pattern {OBJECT_NAME} value [ {patterns} ]\n"
        f"set security utm custom-objects custom-url-category {OBJECT_NAME} value {OBJECT_NAME}\n"
    )


def plain(domains: list[str]) -> str:
    return "".join(f"{d}\n" for d in domains)


# MCAS format number -> (appliance, renderer)
FORMATS: dict[int, tuple[str, Callable[[list[str]], str]]] = {
    102: ("Blue Coat ProxySG", bluecoat),
    104: ("Cisco ASA", cisco_asa),
    108: ("Fortinet FortiGate", fortigate),
    112: ("Palo Alto Networks", palo_alto),
    120: ("Zscaler", zscaler),
    129: ("Juniper SRX", juniper_srx),
    135: ("Websense", websense),
}


def render(format_id: int, domains: list[str]) -> str:
    return FORMATS[format_id][1](sorted(set(domains)))
