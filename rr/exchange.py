"""One recorded HTTP exchange (a flow record, see proxy_addon/flowrecord.py) made readable,
for `rr inspect` and the HAR export: header text, decoded bodies, what a failure was.

Imports nothing from mitmproxy: `rr inspect` must stay quick to start.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

# What a failed exchange was, in the words a HAR viewer or a reader expects (kinds: see
# proxy_addon/errors.py KINDS).
ERROR_PHRASES = {
    "dns": "DNS lookup failed",
    "refused": "connection refused",
    "reset": "connection reset",
    "tls": "TLS handshake failed",
    "timeout": "timed out",
    "protocol": "HTTP protocol error",
    "other": "request failed",
}

# A decoded body larger than this is shown as its wire bytes (a zip bomb in a trace must not
# take the reader's memory).
MAX_DECODED = 256 << 20

# Control characters that make a body binary (tab, newline, form feed and CR are text).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def error_text(error: dict[str, Any]) -> str:
    """'connection refused: [Errno 111] Connect call failed ...' for a record's `error`."""
    phrase = ERROR_PHRASES.get(error.get("kind", ""), ERROR_PHRASES["other"])
    message = str(error.get("message", "")).strip()
    if not message or phrase.lower() in message.lower():
        return message or phrase
    return f"{phrase}: {message}"


def header_text(raw: bytes) -> str:
    """A header name or value as text: UTF-8 when it is, else latin-1 (HTTP's obs-text)."""
    raw = bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def header_value(headers: list[list[bytes]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), as text."""
    wanted = name.lower().encode()
    return next((header_text(v) for n, v in headers if bytes(n).lower() == wanted), None)


@dataclass(frozen=True)
class Body:
    """A message body: the bytes on the wire and, when a content-encoding was undone, decoded."""

    wire: bytes
    data: bytes                  # content-decoded (== wire when not encoded or not decodable)
    content_type: str
    coding: str | None           # the content-encoding that was undone, if any
    not_decoded: str | None      # why a declared content-encoding was not undone
    text: str | None             # the decoded body as text, when it is text

    @property
    def size(self) -> int:
        return len(self.data)


def body_of(message: dict[str, Any]) -> Body:
    """The body of a record's request or response."""
    wire = bytes(message["body"])
    headers = message["headers"]
    content_type = header_value(headers, "content-type") or ""
    coding = (header_value(headers, "content-encoding") or "").strip().lower()
    data, not_decoded = wire, None
    if coding and coding != "identity" and wire:
        try:
            data = decode_content(wire, coding)
        except ValueError as e:
            not_decoded = str(e)
    return Body(wire, data, content_type, coding if data is not wire else None, not_decoded,
                as_text(data, content_type))


def decode_content(data: bytes, coding: str) -> bytes:
    """Undo a Content-Encoding list ('gzip', 'br', 'gzip, deflate', ...); ValueError if not possible."""
    for name in reversed([c.strip() for c in coding.split(",") if c.strip()]):
        data = _decode_one(data, name)
    return data


def _decode_one(data: bytes, name: str) -> bytes:
    if name == "identity":
        return data
    if name in ("gzip", "x-gzip", "deflate"):
        # wbits 47 reads gzip and zlib; a raw deflate stream (as some servers send) needs -15.
        for wbits in ((47, -15) if name == "deflate" else (31,)):
            d = zlib.decompressobj(wbits)
            try:
                out = d.decompress(data, MAX_DECODED)
            except zlib.error:
                continue
            if d.unconsumed_tail:
                raise ValueError(f"{name} body decodes to more than {MAX_DECODED >> 20} MiB")
            if d.eof:
                return out
        raise ValueError(f"not valid {name} data")
    if name == "br":
        try:
            import brotli
        except ImportError:
            raise ValueError("brotli is not installed") from None
        try:
            return bytes(brotli.decompress(data))
        except brotli.error as e:
            raise ValueError(f"not valid br data ({e})") from None
    if name == "zstd":
        try:
            import zstandard
        except ImportError:
            raise ValueError("zstandard is not installed") from None
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError as e:
            raise ValueError(f"not valid zstd data ({e})") from None
    raise ValueError(f"unknown content-encoding {name!r}")


def charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def as_text(data: bytes, content_type: str) -> str | None:
    """`data` as text (its declared charset, else UTF-8), or None when it is binary."""
    try:
        text = data.decode(charset(content_type) or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None
    if _BINARY_CONTROLS.search(text):
        return None
    return text
