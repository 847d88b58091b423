"""Output checks: what the guest wrote to stdout and stderr, digested while recording and
compared after a replay, so a nondeterminism rr missed shows as a divergence, not a silent
different run.

A recording stores per stream (the trace outcome's `output`, see rr/trace/records.py):

    {"size": bytes written, "sha256": hex digest of them,
     "chunk": C, "digests": 4 bytes per C-byte chunk (its CRC-32: they only locate a difference),
     "data": the bytes themselves}          # only with --record-output

so a replay that wrote something else can still say where: the first chunk whose digest
differs (C is 4 KiB, doubled as often as needed to keep at most MAX_CHUNKS digests), or, with
the bytes recorded, the exact offset and the bytes around it on both sides.

The guest's writes are digested as the guest made them, whether or not the real stdout took
them. Whether a write succeeds is an input like any other: a recording whose stdout failed
(`rr record ... | head`) writes the event FAILED_CALL(stream, operation, offset) -> [errno,
message] where the first write or flush failed, as side data between the guest's events; the
replay fails that same operation and every later one the same way, and otherwise gives the
guest success, whatever its own stdout does (`rr replay ... | head` is no divergence).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from typing import Any, BinaryIO

# 4 KiB: the preview1 adapter's write size, so a write is usually one chunk (one CRC call)
LEAF = 4096
MAX_CHUNKS = 4096
DIGEST_BYTES = 4
STREAMS = ("stdout", "stderr")
# A replay keeps this much of what it wrote, per stream, to show the bytes at a difference.
REPLAY_KEEP = 16 << 20
_CONTEXT = 32
MIN_SECRET = 4   # shorter redacted values ("1", "ok") are not looked for in the output
FAILED_CALL = "rr:output.write-failed"


def is_failure(event: Any) -> bool:
    return event.call == FAILED_CALL


def failure_event(name: str, operation: int, offset: int, errno: int, message: str) -> Any:
    from .trace import Event
    return Event(FAILED_CALL, [name, operation, offset], [errno, message])


class StreamDigest:
    """Everything needed to check one output stream, updated write by write."""

    def __init__(self, keep: int = 0) -> None:
        self.size = 0
        self._sha = hashlib.sha256()
        self._leaves: list[bytes] = []        # one DIGEST_BYTES digest per full LEAF
        self._partial = bytearray()           # the bytes of the leaf being filled
        self._keep = keep
        self.kept = bytearray()               # the first `keep` bytes

    def update(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._sha.update(data)
        if len(self.kept) < self._keep:
            self.kept += data[:self._keep - len(self.kept)]
        if not self._partial and len(data) == LEAF:   # the usual write: one chunk
            self._leaves.append(_short(data))
            return
        view = memoryview(data)
        if self._partial:
            take = LEAF - len(self._partial)
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) < LEAF:
                return
            self._leaves.append(_short(self._partial))
            self._partial.clear()
        whole = len(view) - len(view) % LEAF
        for at in range(0, whole, LEAF):   # bounded by the write's length
            self._leaves.append(_short(view[at:at + LEAF]))
        self._partial += view[whole:]

    def leaves(self) -> list[bytes]:
        return self._leaves + ([_short(self._partial)] if self._partial else [])

    def chunks(self, chunk: int) -> bytes:
        """The digests of this stream in chunks of `chunk` bytes (a power-of-two multiple of LEAF)."""
        return _group(self.leaves(), chunk // LEAF)

    def summary(self, with_data: bool = False) -> dict[str, Any]:
        leaves = self.leaves()
        group = 1
        while -(-len(leaves) // group) > MAX_CHUNKS:   # bounded: group doubles
            group *= 2
        out: dict[str, Any] = {"size": self.size, "sha256": self._sha.hexdigest(), "chunk": LEAF * group,
                               "digests": _group(leaves, group)}
        if with_data:
            out["data"] = bytes(self.kept)
        return out


def _short(data: bytes | bytearray | memoryview) -> bytes:
    return zlib.crc32(data).to_bytes(DIGEST_BYTES, "big")


def _group(leaves: list[bytes], group: int) -> bytes:
    if group == 1:
        return b"".join(leaves)
    return b"".join(_short(b"".join(leaves[i:i + group])) for i in range(0, len(leaves), group))


class CheckedOutput:
    """The guest's stdout or stderr: each write digested, then passed to `sink` (None: nowhere).

    Recording: a failed write or flush fails for the guest, as without rr, and the first one is
    reported to `on_failure(stream, operation, offset, errno, message)`. Replay (`replay=True`):
    the operations fail where the recording's did (`fail_at`), all others succeed; once the
    real stream fails (a reader that closed the pipe) the rest goes nowhere, `lost` says why."""

    def __init__(self, name: str, sink: BinaryIO | None, digest: StreamDigest, replay: bool = False,
                 on_failure: Any = None) -> None:
        self.name = name
        self._sink = sink
        self.digest = digest
        self._replay = replay
        self._on_failure = on_failure
        self.operations = 0                       # writes and flushes so far
        self.fail_at: tuple[int, int, str] | None = None   # replay: (operation, errno, message)
        self.lost: OSError | None = None

    def write(self, data: bytes) -> int:
        at = self.digest.size
        self.digest.update(data)
        self._do(self._sink.write if self._sink is not None else None, at, data)
        return len(data)

    def flush(self) -> None:
        self._do(self._sink.flush if self._sink is not None else None, self.digest.size)

    def _do(self, action: Any, offset: int, *args: Any) -> None:
        self.operations += 1
        if self._replay:
            if self.fail_at is not None and self.operations >= self.fail_at[0]:
                raise OSError(self.fail_at[1], self.fail_at[2])
            if action is None or self.lost is not None:
                return
            try:
                action(*args)
            except OSError as e:
                self.lost = e
            return
        if action is None:
            return
        try:
            action(*args)
        except OSError as e:
            if self._on_failure is not None:
                self._on_failure(self.name, self.operations, offset, e.errno or 0, e.strerror or str(e))
                self._on_failure = None   # the first failure says where; the stream stays failed
            raise


class Outputs:
    """stdout and stderr of one run, wrapped around the sandbox's streams. Recording:
    `on_failure` gets the first failed operation of each stream (see CheckedOutput)."""

    def __init__(self, stdout: BinaryIO | None, stderr: BinaryIO | None, *, keep: int = 0,
                 replay: bool = False, on_failure: Any = None) -> None:
        self.stdout = CheckedOutput("stdout", stdout, StreamDigest(keep), replay, on_failure)
        self.stderr = CheckedOutput("stderr", stderr, StreamDigest(keep), replay, on_failure)
        self.withheld: list[str] = []   # streams whose bytes summary() left out

    def recorded_failure(self, event: Any) -> None:
        """Replay: the recording's stream failed at this operation (a FAILED_CALL event)."""
        try:
            name, operation, _ = event.args
            errno, message = event.result
            stream = {"stdout": self.stdout, "stderr": self.stderr}[name]
            stream.fail_at = (int(operation), int(errno), str(message))
        except (ValueError, TypeError, KeyError):
            return   # a hand-edited event that says nothing usable: the replay shows what follows

    def summary(self, with_data: bool = False, secrets: Iterable[bytes] = ()) -> dict[str, Any]:
        """The trace's `output`. With the bytes, a stream that holds one of `secrets` (values the
        recording redacted) keeps its digests only: `withheld` names it."""
        self.withheld = []
        out = {}
        for name in STREAMS:
            digest = getattr(self, name).digest
            leak = with_data and any(len(s) >= MIN_SECRET and s in digest.kept for s in secrets)
            if leak:
                self.withheld.append(name)
            out[name] = digest.summary(with_data and not leak)
        return out

    def difference(self, recorded: dict[str, Any] | None) -> str | None:
        """Why this run's output is not the recorded one (None: it is, or nothing was recorded)."""
        if not recorded:
            return None
        for name in STREAMS:
            if name in recorded:
                why = stream_difference(name, recorded[name], getattr(self, name).digest)
                if why is not None:
                    return why
        return None


def stream_difference(name: str, recorded: dict[str, Any], replayed: StreamDigest) -> str | None:
    kept = bytes(replayed.kept)
    data = recorded.get("data")
    sizes = f"recorded {recorded['size']} bytes, replayed {replayed.size}"
    if data is not None and len(kept) == replayed.size:
        if data == kept:
            return None
        return _exact(name, data, kept, sizes)
    if recorded["size"] == replayed.size and recorded["sha256"] == replayed._sha.hexdigest():
        return None
    if data is not None and _first_difference(data, kept) < len(kept):
        return _exact(name, data, kept, sizes)
    if replayed.size > recorded["size"] and len(kept) >= recorded["size"] \
            and hashlib.sha256(kept[:recorded["size"]]).hexdigest() == recorded["sha256"]:
        at = recorded["size"]
        return (f"the guest's {name} differs from the recording at byte {at}: the replay wrote more "
                f"({sizes}):\n  replayed: {_around(kept, at)}")
    chunk = recorded["chunk"]
    mine, theirs = replayed.chunks(chunk), recorded["digests"]
    common = min(len(mine), len(theirs))
    index = next((i for i in range(0, common, DIGEST_BYTES) if mine[i:i + DIGEST_BYTES] != theirs[i:i + DIGEST_BYTES]),
                 common) // DIGEST_BYTES
    start = index * chunk
    end = min(start + chunk, max(recorded["size"], replayed.size)) - 1
    where = f"within bytes {start}-{end}" if start <= end else "in its length"
    shown = f"\n  replayed bytes {start}-: {_span(kept, start)}" if start < len(kept) else ""
    return (f"the guest's {name} differs from the recording {where} ({sizes}; the trace has the digests of "
            f"{chunk}-byte chunks, not the bytes: record with --record-output for the exact offset){shown}")


def _exact(name: str, data: bytes, kept: bytes, sizes: str) -> str:
    at = _first_difference(data, kept)
    return (f"the guest's {name} differs from the recording at byte {at} ({sizes}):\n"
            f"  recorded: {_around(data, at)}\n  replayed: {_around(kept, at)}")


def _first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    lo = 0
    step = 1 << 16
    while lo < n and a[lo:lo + step] == b[lo:lo + step]:   # bounded: lo grows each round
        lo += step
    return next((i for i in range(lo, min(lo + step, n)) if a[i] != b[i]), n)


def _around(data: bytes, at: int) -> str:
    """The bytes before and after `at`, the offset marked by ` | `."""
    start = max(0, at - _CONTEXT)
    lead = "..." if start else ""
    tail = "..." if at + _CONTEXT < len(data) else ""
    after = repr(data[at:at + _CONTEXT])[1:] if at < len(data) else "(end)"
    before = f"{lead}{repr(data[start:at])[1:]} | " if at else "| "
    return f"{before}{after}{tail}"


def _span(data: bytes, start: int, limit: int = 4 * _CONTEXT) -> str:
    """Bytes from `start` (the start of a chunk that differs)."""
    return repr(data[start:start + limit])[1:] + ("..." if start + limit < len(data) else "")


def describe(output: dict[str, Any]) -> str:
    """One line for `rr inspect`."""
    parts = []
    for name in STREAMS:
        s = output.get(name)
        if s is not None:
            digest = f" sha256 {s['sha256'][:16]}..." if s["size"] else ""
            parts.append(f"{name} {s['size']} bytes{digest}" + (" (bytes recorded)" if "data" in s else ""))
    return ", ".join(parts)


def as_json(output: dict[str, Any]) -> dict[str, Any]:
    return {name: {"size": s["size"], "sha256": s["sha256"], "chunk": s["chunk"], "bytes_recorded": "data" in s}
            for name, s in output.items()}
