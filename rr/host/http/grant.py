"""Which hosts the guest may send HTTP requests to: the `--allow-http PATTERN` grant.

Nothing is allowed unless granted. A pattern is one of

    *                   every host and port
    HOST  HOST:PORT     a name (case-insensitive) or an IP literal; without a port, any port
    *.DOMAIN[:PORT]     every name ending in .DOMAIN (not DOMAIN itself)
    [V6]  [V6]:PORT     an IPv6 literal (a bare one, ::1, is accepted too)

Patterns are matched against the host of the request's URL as the guest wrote it: names
are never resolved, so `localhost` does not grant `127.0.0.1`. IP literals are compared as
addresses (`::1` grants `[0:0::1]`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

ALL = "*"


class BadPattern(ValueError):
    """A pattern that is not one of the forms above (the message says why)."""


@dataclass(frozen=True)
class _Rule:
    host: str                 # a normalised name or address, or a ".domain" suffix, or "*"
    port: int | None = None   # None: any port

    def allows(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host == ALL:
            return True
        if self.host.startswith("."):
            return host.endswith(self.host)
        return host == self.host


def _normal_host(host: str) -> str:
    """A host as compared: an address in its canonical form, a name lower-case without a trailing dot."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _port(text: str, pattern: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadPattern(f"{pattern!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse(pattern: str) -> _Rule:
    text = pattern.strip()
    if text == ALL:
        return _Rule(ALL)
    port: int | None = None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadPattern(f"{pattern!r}: expected [IPv6] or [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], pattern)
        try:
            return _Rule(str(ipaddress.IPv6Address(inside)), port)
        except ValueError:
            raise BadPattern(f"{pattern!r}: {inside!r} is not an IPv6 address") from None
    if text.count(":") > 1:  # a bare IPv6 literal
        try:
            return _Rule(str(ipaddress.IPv6Address(text)))
        except ValueError:
            raise BadPattern(f"{pattern!r}: not an IPv6 address (write [IPv6]:PORT for a port)") from None
    host, colon, port_text = text.partition(":")
    if colon:
        port = _port(port_text, pattern)
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    labels = name.rstrip(".").split(".")
    if not name or not all(labels) or any(c in name for c in "*/@?#[] \t"):
        raise BadPattern(f"{pattern!r}: expected *, HOST, HOST:PORT, *.DOMAIN or [IPv6]:PORT")
    normal = _normal_host(name)
    return _Rule("." + normal if wildcard else normal, port)


class HttpGrant:
    """The parsed grant. `patterns` keeps the user's text (for the trace header)."""

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = list(patterns)
        self._rules = [parse(p) for p in self.patterns]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def allows(self, host: str, port: int) -> bool:
        normal = _normal_host(host)
        return any(rule.allows(normal, port) for rule in self._rules)


def wasmtime_s_option(value: str) -> list[str]:
    """The wasmtime CLI's `-S OPTS` (comma-separated): `http` (or http=y) allows all HTTP.

    Raises BadPattern for any other option: rr grants the rest with its own flags."""
    patterns: list[str] = []
    for option in value.split(","):
        name, eq, setting = option.strip().partition("=")
        if name != "http":
            raise BadPattern(f"-S {option.strip()!r}: rr takes only -S http (use rr's own flags "
                             f"for the rest: --env, --dir, --allow-http)")
        if not eq or setting.lower() in ("y", "yes", "true", "1"):
            patterns = [ALL]
        elif setting.lower() in ("n", "no", "false", "0"):
            patterns = []
        else:
            raise BadPattern(f"-S {option.strip()!r}: expected http, http=y or http=n")
    return patterns
