"""Log parsers, one module per format behind ``LogParser``; ``parser_for(source)`` picks one by MCAS's source
name (the ``source`` of ``GET /api/v1/discovery/upload_url/``)."""

from __future__ import annotations

from trustplane.discovery.parsers.base import (
    ALLOWED,
    BLOCKED,
    Batch,
    LogParser,
    ParseStats,
    Rejection,
    TrafficRecord,
    parse_stream,
)
from trustplane.discovery.parsers.cef import CefParser
from trustplane.discovery.parsers.cisco_asa import CiscoAsaParser
from trustplane.discovery.parsers.custom import CustomFormat, CustomFormatError, CustomParser
from trustplane.discovery.parsers.fortigate import FortiGateParser
from trustplane.discovery.parsers.leef import LeefParser
from trustplane.discovery.parsers.paloalto import PaloAltoParser
from trustplane.discovery.parsers.squid import SquidNativeParser
from trustplane.discovery.parsers.w3c import W3cParser
from trustplane.discovery.parsers.zscaler import ZscalerParser

BUILT_IN: tuple[type[LogParser], ...] = (
    SquidNativeParser,
    CefParser,
    LeefParser,
    W3cParser,
    ZscalerParser,
    PaloAltoParser,
    FortiGateParser,
    CiscoAsaParser,
)
CUSTOM_SOURCE = "CUSTOM_PARSER"
SOURCES: dict[str, type[LogParser]] = {source: cls for cls in BUILT_IN for source in cls.sources}


def is_supported(source: str) -> bool:
    return source in SOURCES or source == CUSTOM_SOURCE


def parser_for(source: str, custom: CustomFormat | None = None) -> LogParser:
    """A fresh parser for an MCAS source name. ``CUSTOM_PARSER`` needs the tenant's custom format."""
    if source == CUSTOM_SOURCE:
        if custom is None:
            raise KeyError("CUSTOM_PARSER needs a custom format definition")
        return CustomParser(custom)
    return SOURCES[source]()


__all__ = [
    "ALLOWED",
    "BLOCKED",
    "BUILT_IN",
    "CUSTOM_SOURCE",
    "SOURCES",
    "Batch",
    "CustomFormat",
    "CustomFormatError",
    "LogParser",
    "ParseStats",
    "Rejection",
    "TrafficRecord",
    "is_supported",
    "parse_stream",
    "parser_for",
]
