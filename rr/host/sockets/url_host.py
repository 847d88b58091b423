"""The host parser wasmtime puts in front of a name lookup (`url::Host::parse`, the WHATWG URL
standard's host parsing), so that resolve-addresses accepts, refuses and rewrites names exactly as
`wasmtime run` does.

What it decides, and why it matters here:
- refused names (a forbidden code point after percent-decoding, a C0 control, an empty host, a bad
  IPv4 form such as 1.2.3.256) are `invalid-argument` at once, as under wasmtime, and reach no
  resolver;
- names that end in a number are IPv4 addresses in any of the URL standard's forms (0x7f.1,
  2130706433, 127.1) and are answered without a lookup;
- anything else is a domain, made ASCII by IDNA, which the system resolver then answers. The URL
  standard does not check DNS lengths: a 64-byte label or an empty one (a..b) is a domain, and it
  is the resolver that says name-unresolvable (glibc refuses such a query without sending it).

IDNA: an ASCII label is lowercased; an `xn--` label must decode; a non-ASCII label goes through
Python's nameprep and punycode (IDNA 2003, where wasmtime's idna crate does UTS 46: they differ
only on a few code points such as ß, which UTS 46 keeps and nameprep maps to ss).
"""

from __future__ import annotations

import ipaddress
from encodings import idna
from urllib.parse import unquote_to_bytes

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The URL standard's forbidden domain code points (C0 controls, DEL and these).
_FORBIDDEN = frozenset(" #%/:<>?@[\\]^|\x7f") | frozenset(map(chr, range(0x20)))
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})   # what IDNA reads as dots


def parse(name: str) -> IpAddress | str:
    """The address `name` denotes, or the ASCII domain to resolve; ValueError if wasmtime refuses it."""
    if name.startswith("["):
        inner = name[1:-1] if name.endswith("]") else ""
        if "%" in inner:    # a zone index: Python's parser takes one, the URL standard does not
            raise ValueError(name)
        return ipaddress.IPv6Address(inner)
    domain = _to_ascii(unquote_to_bytes(name).decode("utf-8", "replace"))
    if not domain or any(c in _FORBIDDEN for c in domain):
        raise ValueError(name)
    return _ipv4(domain) if _ends_in_a_number(domain) else domain


def _to_ascii(domain: str) -> str:
    try:
        return ".".join(_label_to_ascii(label) for label in domain.translate(_DOTS).split("."))
    except UnicodeError:
        raise ValueError(domain) from None


def _label_to_ascii(label: str) -> str:
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):
            label[4:].encode("ascii").decode("punycode")   # UnicodeError if it is not punycode
        return label
    prepared = idna.nameprep(label)
    if prepared.isascii():
        return prepared
    return "xn--" + prepared.encode("punycode").decode("ascii")


def _ends_in_a_number(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(last) and (last.isdigit() and last.isascii() or _ipv4_number(last) is not None)


def _ipv4_number(part: str) -> int | None:
    """The URL standard's IPv4 number (decimal, 0x hex, 0 octal); None if it is not one."""
    if not part:
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, base = part[1:], 8
    if not part:
        return 0
    digits = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}[base]
    if any(c not in digits for c in part):
        return None
    return int(part, base)


def _ipv4(domain: str) -> ipaddress.IPv4Address:
    parts = domain.split(".")
    if parts[-1] == "":
        parts.pop()
    numbers = [_ipv4_number(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(domain)
    *head, last = numbers
    assert last is not None
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):   # type: ignore[operator]
        raise ValueError(domain)
    return ipaddress.IPv4Address(last + sum(n << (8 * (3 - i)) for i, n in enumerate(head)))   # type: ignore[operator]
