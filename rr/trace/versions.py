"""Trace format versions and the migrations that let older traces keep reading.

A migration upgrades *format-neutral* raw records (the dicts both codecs decode to:
the header map, and events as {"call", "args", "result", "failed"}) from version v
to v + 1. Codec-level layout changes must be handled in the codec itself.

  1 -> 2  records unchanged. The codecs changed: CBOR records sit in checksummed frames
          (a CRC-32 chain, cbor.py), JSONL writes text bytes as {"$utf8": ...}. Both
          codecs still read the version-1 layout; writing is always the current version.

Optional fields added within version 2 (absent in older traces, which read as before; an rr
from before a field refuses a trace that has it, as a corrupt record):
  outcome.output   what the guest wrote to stdout/stderr (rr/output.py): replay compares it.
  streamed bodies  an HTTP response body over the proxy's threshold (4 MiB) is not in its flow
                   record (`response.streamed: true`, body empty) but in events of its own that
                   follow it: `rr:http.body [flow id, "response"] -> bytes`, one per piece in
                   order, then `rr:http.body-end [flow id, "response"] -> {size, trailers,
                   error, end}` (rr/merge.py). Plain events to the codecs: framed and
                   checksummed as every record; an older rr refuses them as unknown calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RecordError

FORMAT_NAME = "rr-trace"
CURRENT_VERSION = 2

RawRecord = dict[str, Any]


@dataclass(frozen=True)
class Migration:
    header: Callable[[RawRecord], RawRecord]
    event: Callable[[RawRecord], RawRecord]


def _same(raw: RawRecord) -> RawRecord:
    return raw


# version v -> the migration that turns a version-v record into a version v+1 record
MIGRATIONS: dict[int, Migration] = {
    1: Migration(header=_same, event=_same),
}


def upgrade_header(raw: RawRecord) -> tuple[RawRecord, int]:
    """Check format and version of a raw header; return it upgraded plus the version the file has."""
    if raw.get("format") != FORMAT_NAME:
        raise RecordError(f"not an rr trace (format is {raw.get('format')!r}, expected {FORMAT_NAME!r})")
    version = raw.get("version")
    if type(version) is not int:
        raise RecordError(f"header field 'version' must be an int, not {version!r}")
    if version > CURRENT_VERSION:
        raise RecordError(f"trace format version {version} is newer than this rr supports "
                          f"({CURRENT_VERSION}); upgrade rr")
    if version != CURRENT_VERSION and version not in MIGRATIONS:
        raise RecordError(f"trace format version {version} is not supported by this rr "
                          f"(reads {sorted({*MIGRATIONS, CURRENT_VERSION})})")
    for v in range(version, CURRENT_VERSION):
        raw = {**MIGRATIONS[v].header(raw), "version": v + 1}
    return raw, version


def upgrade_event(file_version: int, raw: RawRecord) -> RawRecord:
    for v in range(file_version, CURRENT_VERSION):
        raw = MIGRATIONS[v].event(raw)
    return raw
