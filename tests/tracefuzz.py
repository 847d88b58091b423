"""Seeded mutations of real traces, replayed and classified: shared by tests/test_trace_fuzz.py
and benchmarks/fuzz_traces.py.

A *corpus* is a set of real recordings made by `python -m rr record` (real guests, real stdin,
a real directory grant, a real loopback HTTP server), each as .cbor, .jsonl and .cbor.gz. A *mutant* is one of them changed either
at the byte level (bit flips, bytes set, truncation, insertion, whole records duplicated /
swapped / deleted by their byte spans, CBOR heads claiming huge lengths, values replaced by
NaN, bignums, deep nesting or other types) or at the record level (records read with
rr.trace's reader, changed, written back with its writer, so the mutant is a well-formed trace
of whatever format version rr writes). Mutant `i` of seed `s` is made by
`random.Random(f"rr-fuzz:{s}:{i}")` alone, so it can be made again from the same corpus.

Every mutant is replayed (in this process through rr.session.replay, or as a `python -m rr
replay` subprocess) and put in one class:

  identical         same stdout, guest stderr and status as the recording (a harmless change)
  reader-122        (in-process, when asked to sample) rr.trace's reader refused it in one line,
                    and the replay, which would meet the same error, was skipped
  rejected-121/122  rr refused it: exit 121 (diverged) or 122 (bad trace), said on stderr
  as-edited         a record-level (or JSONL) edit replayed to the edited story (exit status
                    of the guest, different output): the trace said so, rr did what it said
                    (rare since traces record output digests: such an edit ends in a 121)
  FAIL-*            a failure: crash (exit 70, an exception that is not rr's own error, a
                    traceback), signal, hang (bounded by a timeout), a 122 said in more than
                    one line, another rr status, or for a byte-level mutant of a .cbor trace
                    exit with the guest's status and output different from the recording
                    (FAIL-silent-wrong: the bytes changed and nothing noticed); for every 4th
                    in-process mutant, `rr inspect`/`rr convert` failing other than with
                    TraceError (FAIL-tools).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

REPO = Path(__file__).resolve().parent.parent
C_BIN = REPO / "tests" / "guests" / "bin"
RR = [sys.executable, "-m", "rr"]
FORMATS = ("cbor", "jsonl", "cbor.gz")
EXIT_DIVERGED, EXIT_BAD_TRACE, EXIT_INTERNAL = 121, 122, 70


# ------------------------------------------------------------------ the corpus: real recordings


@dataclass(frozen=True)
class Recording:
    """One real recording and what it printed: the reference every mutant is judged against."""

    name: str
    wasm: Path
    traces: dict[str, Path]          # format -> trace file (.cbor is recorded, the others converted)
    status: int
    stdout: bytes
    stderr: bytes                    # the guest's own stderr (rr's `rr: ` lines removed); served: story()
    http: bool = False
    served: bool = False             # an `rr serve -t` trace: its replay's story is its request lines

    @property
    def in_process(self) -> bool:
        """Replayed by the in-process worker too (HTTP and server traces: by the CLI only)."""
        return not self.http and not self.served

    def data(self, fmt: str) -> bytes:
        return self.traces[fmt].read_bytes()


@dataclass(frozen=True)
class GuestCase:
    name: str
    wasm: Path
    args: tuple[str, ...] = ()
    stdin: bytes = b""
    flags: tuple[str, ...] = ()
    http: bool = False
    env: tuple[tuple[str, str], ...] = ()   # for the recording only


def guest_stderr(stderr: bytes) -> bytes:
    return b"".join(ln for ln in stderr.splitlines(keepends=True) if not ln.startswith(b"rr: "))


def served_story(stderr: bytes) -> bytes:
    """What a server trace's replay says of its requests: `rr: request N METHOD PATH: verdict`
    lines (a replay that drops, adds or changes a request tells another story)."""
    return b"".join(ln for ln in stderr.splitlines(keepends=True) if ln.startswith(b"rr: request "))


def story(rec: Recording, stderr: bytes) -> bytes:
    return served_story(stderr) if rec.served else guest_stderr(stderr)


def _env() -> dict[str, str]:
    # and the sanitizer settings and PYTHONPATH: this corpus can be run under ASan + UBSan with
    # another tree's (sanitized) build of rr (benchmarks/README.md, fuzz_native.py)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "RR_CACHE_DIR", "XDG_CACHE_HOME", "LD_PRELOAD",
                                      "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONPATH") if k in os.environ}
    env["RUST_BACKTRACE"] = "0"
    return env


def rr_help_mentions(flag: str, command: str = "record") -> bool:
    done = subprocess.run([*RR, command, "--help"], capture_output=True, cwd=REPO, env=_env(), timeout=60)
    return flag.encode() in done.stdout


def guest_cases(workdir: Path, http_url: str | None, random_heavy: Path | None = None) -> list[GuestCase]:
    """The guests the fuzzers record. `http_url`: a loopback URL for http_get (None: no HTTP)."""
    data = workdir / "fs-grant"
    data.mkdir(parents=True, exist_ok=True)
    (data / "in.txt").write_bytes(b"input of fs_ops\n")
    cases = [
        GuestCase("random", C_BIN / "random.wasm"),
        GuestCase("clock", C_BIN / "clock.wasm", ("3",)),
        GuestCase("echo_stdin", C_BIN / "echo_stdin.wasm", stdin=b"line one\n\x00\xff binary \r\n" * 40),
        GuestCase("fs_ops", C_BIN / "fs_ops.wasm", ("/data",), flags=("--dir-rw", f"{data}::/data")),
        GuestCase("bigout", C_BIN / "bigout.wasm", ("1",)),
    ]
    if random_heavy is not None:
        cases.append(GuestCase("random_heavy", random_heavy, ("20", "10")))
    if http_url is not None:
        flags = ("--allow-http", "127.0.0.1") if rr_help_mentions("--allow-http") else ()
        cases.append(GuestCase("http_get", C_BIN / "http_get.wasm", (http_url,), flags=flags, http=True))
        # A body streamed in pieces (rr/merge.py BODY_CALL): a low threshold, so a few of them.
        big = re.sub(r"/[^/]*$", "/bytes?n=200000", http_url)
        cases.append(GuestCase("http_stream", C_BIN / "http_get.wasm", (big, "--summary"), flags=flags, http=True,
                               env=(("RR_HTTP_STREAM_ABOVE", "65536"),)))
    return cases


def record(case: GuestCase, workdir: Path) -> Recording:
    """`python -m rr record` of one guest (.cbor), converted to .jsonl and .cbor.gz through rr.trace."""
    from rr.trace import convert

    trace = workdir / f"{case.name}.cbor"
    done = subprocess.run([*RR, "record", str(case.wasm), "-t", str(trace), "--force", *case.flags,
                           "--", *case.args], input=case.stdin, capture_output=True, cwd=REPO,
                          env={**_env(), **dict(case.env)}, timeout=120)
    if not trace.exists() or b"rr: recorded" not in done.stderr:
        raise RuntimeError(f"recording {case.name} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    traces = {"cbor": trace}
    for fmt in FORMATS[1:]:
        traces[fmt] = workdir / f"{case.name}.{fmt}"
        convert(trace, traces[fmt], overwrite=True)
    return Recording(case.name, case.wasm, traces, done.returncode,
                     done.stdout, guest_stderr(done.stderr), case.http)


SERVED_REQUESTS = (("GET", "/", b""), ("GET", "/random", b""), ("POST", "/echo", b"body \x00\xff\r\n" * 20),
                   ("GET", "/fetch?url={upstream}", b""), ("GET", "/trap", b""))


def record_served(workdir: Path, upstream_url: str) -> Recording:
    """`python -m rr serve -t` of the C handler (tests/guests/bin/serve_c.wasm): one request per
    route, the handler's own HTTP to `upstream_url` included, stopped by SIGTERM; converted as
    `record` does. Its reference is a replay of the original (exit 0, every request a match)."""
    import http.client

    import guests
    from rr.trace import convert

    wasm = C_BIN / "serve_c.wasm"
    trace = workdir / "served.cbor"
    trace.unlink(missing_ok=True)
    server = guests.Served(wasm, "--allow-http", "127.0.0.1", "-t", str(trace))
    try:
        for method, path, body in SERVED_REQUESTS:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            try:
                conn.request(method, path.format(upstream=upstream_url), body=body or None)
                conn.getresponse().read()
            finally:
                conn.close()
    finally:
        status, err = server.stop(signal.SIGTERM)
    if status != 0 or f"recorded {len(SERVED_REQUESTS)} to" not in err:
        raise RuntimeError(f"recording rr serve failed ({status}): {err}")
    traces = {"cbor": trace}
    for fmt in FORMATS[1:]:
        traces[fmt] = workdir / f"served.{fmt}"
        convert(trace, traces[fmt], overwrite=True)
    done = subprocess.run([*RR, "replay", str(wasm), str(trace)], capture_output=True, cwd=REPO,
                          env=_env(), timeout=120)
    if done.returncode != 0 or served_story(done.stderr).count(b": match\n") != len(SERVED_REQUESTS):
        raise RuntimeError(f"replaying the served trace failed ({done.returncode}): {done.stderr!r}")
    return Recording("served", wasm, traces, 0, done.stdout, served_story(done.stderr), served=True)


# ------------------------------------------------------------------ CBOR structure (of originals)


@dataclass(frozen=True)
class Item:
    pos: int      # offset of the item's head
    head: int     # length of the head
    end: int      # offset after the item (and everything inside it)
    major: int
    depth: int


def cbor_items(data: bytes, start: int) -> list[Item]:
    """Every CBOR data item of a well-formed CBOR sequence from `start`, nested ones included
    (definite lengths only: what rr writes). Stops quietly at anything it cannot walk."""
    out: list[Item] = []

    def walk(pos: int, depth: int) -> int:
        ib = data[pos]
        major, ai = ib >> 5, ib & 31
        if ai < 24:
            arg, head = ai, 1
        elif ai <= 27:
            n = 1 << (ai - 24)
            arg, head = int.from_bytes(data[pos + 1:pos + 1 + n], "big"), 1 + n
        else:
            raise ValueError("indefinite length")
        end = pos + head
        if major in (2, 3):
            end += arg
        elif major == 4:
            for _ in range(arg):
                end = walk(end, depth + 1)
        elif major == 5:
            for _ in range(2 * arg):
                end = walk(end, depth + 1)
        elif major == 6:
            end = walk(end, depth + 1)
        elif major == 7 and ai in (25, 26, 27):
            arg = 0
        if end > len(data):
            raise ValueError("past the end")
        out.append(Item(pos, head, end, major, depth))
        return end

    pos = start
    try:
        while pos < len(data):
            pos = walk(pos, 0)
    except (ValueError, IndexError):
        pass
    return out


CBOR_MAGIC = b"\xd9\xd9\xf7"


def record_spans(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """Byte spans of the records after the header: top-level CBOR items, or JSONL lines."""
    if fmt == "jsonl":
        spans, pos = [], 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            spans.append((pos, end))
            pos = end
        return spans[1:]
    start = len(CBOR_MAGIC) if data.startswith(CBOR_MAGIC) else 0
    return [(it.pos, it.end) for it in cbor_items(data, start) if it.depth == 0][1:]


# ------------------------------------------------------------------ values used by mutations


def deep_cbor(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"


def deep_json(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


HUGE_LENGTHS = (70_000, 400 << 20, (512 << 20) - 1, 2**31, 2**32 + 7, 2**40, 2**63 - 1, 2**64 - 1)
INT_EXTREMES = (-1, 0, 1, 255, 256, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63 - 1,
                2**200, -(2**200))


def odd_value(rng: random.Random, like: Any) -> Any:
    """A trace value of another type, or an extreme one of the same type."""
    choices: list[Any] = [None, True, False, 0, -1, 2**64, 1.5, float("nan"), float("inf"), "", "x" * 3,
                          b"", b"\x00" * 3, [], [0], {}, {"io-error": "x"}, {"$bytes": "AA=="}]
    t = type(like)
    if t is int:
        choices += [like + 1, like - 1, *INT_EXTREMES]
    elif t is bytes:
        choices += [like[:-1], like + b"\x00", like * 2, bytes(len(like)), b"\xff" * (4 << 20)]
    elif t is str:
        choices += [like + "x", like[:-1], like.upper(), "\udcff", "/" + like, "../" + like]
    elif t is list:
        choices += [like[:-1], like + like[-1:], list(reversed(like)), [like]]
    elif t is dict:
        choices += [dict(list(like.items())[:-1]), {**like, "extra": 1}]
    nested: Any = like
    for _ in range(rng.choice((2, 50, 400))):
        nested = [nested]
    choices.append(nested)
    return rng.choice(choices)


def leaf_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every part of a value (containers included), for picking one to replace."""
    out = [path]
    if type(value) is list:
        for i, v in enumerate(value):
            out += leaf_paths(v, path + (i,))
    elif type(value) is dict:
        for k, v in value.items():
            out += leaf_paths(v, path + (k,))
    return out


def replace_at(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if type(value) is list:
        copy = list(value)
    else:
        copy = dict(value)
    copy[head] = replace_at(value[head], rest, new)
    return copy


def get_at(value: Any, path: tuple) -> Any:
    for p in path:
        value = value[p]
    return value


# ------------------------------------------------------------------ mutations


@dataclass
class Mutant:
    guest: str
    fmt: str
    kind: str
    level: str          # "byte" or "record"
    data: bytes
    detail: str = ""


class NotApplicable(Exception):
    """This mutation cannot be made on this trace (e.g. no record of the needed kind)."""


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data))


def b_bitflip(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    out = bytearray(data)
    flips = [(_pos(rng, data), rng.randrange(8)) for _ in range(rng.choice((1, 1, 2, 4)))]
    for p, bit in flips:
        out[p] ^= 1 << bit
    return bytes(out), ",".join(f"{p}^{1 << b:#x}" for p, b in flips)


INTERESTING = (0x00, 0x01, 0x17, 0x18, 0x1b, 0x20, 0x3b, 0x40, 0x5b, 0x5f, 0x60, 0x7b, 0x7f, 0x80, 0x9b,
               0x9f, 0xa0, 0xbb, 0xbf, 0xc2, 0xd8, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfb, 0xff, 0x0a, 0x22,
               0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a)


def b_byte(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    out = bytearray(data)
    changes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        p = _pos(rng, data)
        v = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        out[p] = v
        changes.append(f"{p}={v:#04x}")
    return bytes(out), ",".join(changes)


def b_truncate(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    k = rng.randrange(len(data))
    return data[:k], f"to {k} of {len(data)} bytes"


def b_insert(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    p = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 8, 32))))
    return data[:p] + junk + data[p:], f"{junk.hex()} at {p}"


def b_delete(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    p = _pos(rng, data)
    n = rng.choice((1, 2, 7, 64))
    return data[:p] + data[p + n:], f"{n} at {p}"


def b_dup_bytes(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    p = _pos(rng, data)
    n = rng.choice((1, 3, 16, 200))
    return data[:p + n] + data[p:p + n] + data[p + n:], f"{n} at {p}"


def _spans(data: bytes, fmt: str, need: int = 1) -> list[tuple[int, int]]:
    spans = record_spans(data, fmt)
    if len(spans) < need:
        raise NotApplicable("too few records")
    return spans


def b_rec_dup(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    s, e = rng.choice(_spans(data, fmt))
    return data[:e] + data[s:e] + data[e:], f"record at {s}"


def b_rec_delete(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    s, e = rng.choice(_spans(data, fmt))
    return data[:s] + data[e:], f"record at {s}"


def b_rec_swap(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    spans = _spans(data, fmt, 2)
    i, j = sorted(rng.sample(range(len(spans)), 2))
    (s1, e1), (s2, e2) = spans[i], spans[j]
    return data[:s1] + data[s2:e2] + data[e1:s2] + data[s1:e1] + data[e2:], f"records at {s1} and {s2}"


def b_rec_move(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    spans = _spans(data, fmt, 2)
    s, e = rng.choice(spans)
    rest = data[:s] + data[e:]
    to = rng.choice([p for p, _ in spans if p <= s] + [p - (e - s) for p, _ in spans if p > e] + [len(rest)])
    return rest[:to] + data[s:e] + rest[to:], f"record at {s} to {to}"


# Values inside CBOR records. Format v2 wraps each record in a frame (a byte string: the record,
# then a CRC-32 chained over every record so far); these mutations change one record inside its
# frame and either keep the old checksum (the reader must notice: a byte-level mutant) or
# reseal the whole chain ("+crc": a well-formed trace whose record says something else, so
# what is behind the checksum -- the decoder's bounds and the replay's checks -- is reached).


@dataclass(frozen=True)
class Frame:
    pos: int      # the frame's byte-string head
    start: int    # the record inside it
    end: int      # after the record (the CRC follows, or the next record in an unframed trace)
    crc: bool


def frames(data: bytes) -> list[Frame]:
    """The records of a CBOR trace (header first) with where each sits."""
    top = [it for it in cbor_items(data, len(CBOR_MAGIC)) if it.depth == 0]
    if top and all(it.major == 2 for it in top):
        return [Frame(it.pos, it.pos + it.head, it.end - 4, True) for it in top if it.end - it.pos - it.head >= 4]
    return [Frame(it.pos, it.pos, it.end, False) for it in top]


def seal(records: Sequence[bytes]) -> bytes:
    """A framed CBOR trace of these records with a correct checksum chain."""
    out, crc = bytearray(CBOR_MAGIC), 0
    for rec in records:
        crc = zlib.crc32(rec, crc)
        n = len(rec) + 4
        out += cbor2.dumps(b"\0" * n)[:-n]   # the byte-string head alone
        out += rec + crc.to_bytes(4, "big")
    return bytes(out)


def _in_record(rng: random.Random, data: bytes, fmt: str, majors: Sequence[int], min_depth: int,
               edit: Callable[[bytes, Item], tuple[bytes, str]], sealed: bool) -> tuple[bytes, str]:
    if fmt != "cbor":
        raise NotApplicable("CBOR only")
    fs = frames(data)
    choices = []
    for n, f in enumerate(fs):
        rec = data[f.start:f.end]
        choices += [(n, it) for it in cbor_items(rec, 0) if it.major in majors and it.depth >= min_depth]
    if not choices:
        raise NotApplicable("no such item")
    n, it = rng.choice(choices)
    f = fs[n]
    rec, detail = edit(data[f.start:f.end], it)
    detail = f"record {n}: {detail}"
    if not fs[0].crc:   # an unframed (version 1) trace: the record in place
        return data[:f.start] + rec + data[f.end:], detail
    records = [data[g.start:g.end] for g in fs]
    records[n] = rec
    if sealed:
        return seal(records), detail + ", resealed"
    # the old checksum kept; the frame's length follows the record's
    old_crc = data[f.end:f.end + 4]
    head = cbor2.dumps(b"\0" * (len(rec) + 4))[:-(len(rec) + 4)]
    return data[:f.pos] + head + rec + old_crc + data[f.end + 4:], detail


def _replace_item(rec: bytes, it: Item, new: bytes) -> bytes:
    return rec[:it.pos] + new + rec[it.end:]


def _length_claim(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        n = rng.choice(HUGE_LENGTHS)
        head = bytes((it.major << 5 | 27,)) + n.to_bytes(8, "big")
        return rec[:it.pos] + head + rec[it.pos + it.head:], f"major {it.major} at {it.pos} claims {n}"
    return edit


def _huge_int(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        n = rng.choice((9, 17, 600, 1 << 16))
        value = rng.choice((1, -1)) * (1 << (8 * n - 1)) + 3
        return _replace_item(rec, it, cbor2.dumps(value)), f"int at {it.pos} -> {n}-byte bignum"
    return edit


def _nan(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        new = rng.choice((b"\xf9\x7e\x00", b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x01", b"\xf9\x7c\x00", b"\xf9\xfc\x00"))
        return _replace_item(rec, it, new), f"item at {it.pos} -> {new.hex()}"
    return edit


def _wrong_type(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        new = cbor2.dumps(rng.choice((0, -5, 2**64 - 1, "x", "wasi:random/random.get-random-u64", b"\x00" * 4,
                                      [], [1, 2], {}, {"t": "outcome"}, None, True, 1.5,
                                      cbor2.CBORTag(1, 0), cbor2.CBORTag(999, b"x"))))
        return _replace_item(rec, it, new), f"item at {it.pos} -> {new.hex()[:40]}"
    return edit


def _deep(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        depth = rng.choice((100, 2000, 100_000))
        return _replace_item(rec, it, deep_cbor(depth)), f"item at {it.pos} -> depth {depth}"
    return edit


def _bits(rng: random.Random) -> Callable[[bytes, Item], tuple[bytes, str]]:
    def edit(rec: bytes, it: Item) -> tuple[bytes, str]:
        out = bytearray(rec)
        p = rng.randrange(it.pos, it.end)
        out[p] = rng.choice(INTERESTING) if rng.random() < 0.5 else out[p] ^ (1 << rng.randrange(8))
        return bytes(out), f"byte {p} of the record -> {out[p]:#04x}"
    return edit


_LEAVES = (0, 1, 2, 3, 4, 5, 7)
IN_RECORD: dict[str, tuple[Callable[[random.Random], Any], Sequence[int], int]] = {
    "length-claim": (_length_claim, (2, 3, 4, 5), 0), "huge-int": (_huge_int, (0, 1), 1),
    "nan": (_nan, (0, 1, 2, 3, 7), 1), "wrong-type": (_wrong_type, _LEAVES, 1),
    "deep": (_deep, _LEAVES, 1), "bits": (_bits, (4, 5), 0),
}


def _in_record_mutation(kind: str, sealed: bool) -> Callable[[random.Random, bytes, str], tuple[bytes, str]]:
    make, majors, depth = IN_RECORD[kind]

    def mutate(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
        return _in_record(rng, data, fmt, majors, depth, make(rng), sealed)
    return mutate


def b_deep_json(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    if fmt != "jsonl":
        raise NotApplicable("JSONL only")
    depth = rng.choice((100, 2000, 100_000))
    return _json_token_edit(rng, data, deep_json(depth).encode(), f"depth {depth}")


# JSONL byte-level edits: a scalar token (number, string, literal) replaced by raw text


def _json_tokens(data: bytes) -> list[tuple[int, int]]:
    """Spans of scalar tokens after the header line: numbers, strings, true/false/null."""
    start = data.find(b"\n") + 1
    spans, i, n = [], start, len(data)
    while i < n:
        c = data[i]
        if c == 0x22:   # string
            j = i + 1
            while j < n and data[j] != 0x22:
                j += 2 if data[j] == 0x5c else 1
            spans.append((i, j + 1))
            i = j + 1
        elif c in b"-0123456789tfn":
            j = i
            while j < n and data[j] not in b",]}\n ":
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def _json_token_edit(rng: random.Random, data: bytes, new: bytes, what: str) -> tuple[bytes, str]:
    tokens = _json_tokens(data)
    if not tokens:
        raise NotApplicable("no JSON tokens")
    s, e = rng.choice(tokens)
    return data[:s] + new + data[e:], f"token at {s} -> {what}"


def j_special(rng: random.Random, data: bytes, fmt: str) -> tuple[bytes, str]:
    if fmt != "jsonl":
        raise NotApplicable("JSONL only")
    new = rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0", b"1.0", b"1e5",
                      b"9" * 5000, b"-" + b"9" * 4301, str(2**64).encode(), str(2**70).encode(),
                      b'{"$float": "nan"}', b'{"$bytes": "!!"}', b'{"$bytes": "AAA"}', b'{"$int": "0x1"}',
                      b'{"$int": "0x' + b"f" * 4000 + b'"}', b'{"$dict": {"a": 1}}', b'{"$x": 1}',
                      b'"\\ud800"', b'"\\u0000"', b"[]", b"{}", b"null", b'"x"', b"true"))
    return _json_token_edit(rng, data, new, new[:24].decode(errors="replace"))


BYTE_MUTATIONS: dict[str, Callable[[random.Random, bytes, str], tuple[bytes, str]]] = {
    "bitflip": b_bitflip, "byte": b_byte, "truncate": b_truncate, "insert": b_insert,
    "delete-bytes": b_delete, "dup-bytes": b_dup_bytes, "rec-dup": b_rec_dup, "rec-delete": b_rec_delete,
    "rec-swap": b_rec_swap, "rec-move": b_rec_move, "json-deep": b_deep_json, "json-special": j_special,
    **{kind: _in_record_mutation(kind, False) for kind in IN_RECORD},
}
# Resealed mutants are well-formed traces (like record-level ones): replaying them as edited is no failure.
SEALED_MUTATIONS = {f"{kind}+crc": _in_record_mutation(kind, True) for kind in IN_RECORD}


# Record-level: through rr.trace's public reader and writer


def _write(trace: Any, path: Path) -> bytes:
    from rr.trace import TraceWriter

    w = TraceWriter(path, overwrite=True)   # the format from the name
    try:
        w.write_header(trace.header)
        for e in trace.events:
            w.write_event(e)
        if trace.outcome is not None:
            w.write_outcome(trace.outcome)
    except BaseException:
        w.discard()   # an aborted writer keeps its partial file beside `path`
        raise
    w.close()
    return path.read_bytes()


def _event_index(rng: random.Random, trace: Any) -> int:
    if not trace.events:
        raise NotApplicable("no events")
    return rng.randrange(len(trace.events))


def r_events(rng: random.Random, trace: Any) -> tuple[Any, str]:
    ev = list(trace.events)
    op = rng.choice(("dup", "delete", "swap", "move", "reverse"))
    i = _event_index(rng, trace)
    if op == "dup":
        ev.insert(i, ev[i])
    elif op == "delete":
        del ev[i]
    elif op == "swap":
        if len(ev) < 2:
            raise NotApplicable("one event")
        j = rng.choice([k for k in range(len(ev)) if k != i])
        ev[i], ev[j] = ev[j], ev[i]
    elif op == "move":
        e = ev.pop(i)
        ev.insert(rng.randrange(len(ev) + 1), e)
    else:
        ev.reverse()
    return dataclasses.replace(trace, events=ev), f"{op} event {i}"


def _edit_event(rng: random.Random, trace: Any, part: str) -> tuple[Any, str]:
    i = _event_index(rng, trace)
    e = trace.events[i]
    value = getattr(e, part)
    path = rng.choice(leaf_paths(value))
    new = odd_value(rng, get_at(value, path))
    ev = list(trace.events)
    ev[i] = dataclasses.replace(e, **{part: replace_at(value, path, new)})
    shown = repr(new)
    return dataclasses.replace(trace, events=ev), f"event {i} {part}{list(path)} -> {shown[:60]}"


def r_result(rng: random.Random, trace: Any) -> tuple[Any, str]:
    return _edit_event(rng, trace, "result")


def r_args(rng: random.Random, trace: Any) -> tuple[Any, str]:
    return _edit_event(rng, trace, "args")


def r_call(rng: random.Random, trace: Any) -> tuple[Any, str]:
    i = _event_index(rng, trace)
    e = trace.events[i]
    names = sorted({x.call for x in trace.events} - {e.call}) + ["wasi:random/random.get-random-u64",
                                                                   "wasi:nope/nope.nope", ""]
    op = rng.choice(("call", "failed"))
    ev = list(trace.events)
    if op == "call":
        ev[i] = dataclasses.replace(e, call=rng.choice(names))
    else:
        ev[i] = dataclasses.replace(e, failed=not e.failed)
    return dataclasses.replace(trace, events=ev), f"event {i} {op} -> {ev[i].call if op == 'call' else ev[i].failed}"


def r_outcome(rng: random.Random, trace: Any) -> tuple[Any, str]:
    from rr.trace import Outcome

    new = rng.choice((None, Outcome.exit(0), Outcome.exit(1), Outcome.exit(255), Outcome.exit(2**40),
                      Outcome.exit(-1), Outcome.trap("wasm trap: unreachable"), Outcome.stopped(0),
                      Outcome.stopped(10**6)))
    return dataclasses.replace(trace, outcome=new), f"outcome -> {new}"


def r_header(rng: random.Random, trace: Any) -> tuple[Any, str]:
    h = trace.header
    field_name = rng.choice(("argv", "env", "dirs", "component", "extra", "start_time"))
    if field_name == "argv":
        new: Any = rng.choice(([], h.argv + ["x"], ["other.wasm"], ["a" * 100_000]))
    elif field_name == "env":
        new = rng.choice(([("K", "V")], [("", "")], [("K", "V")] * 1000))
    elif field_name == "dirs":
        new = rng.choice(([], [{"host": "/", "guest": "/data", "mode": "rw"}],
                          h.dirs + [{"host": "/tmp", "guest": "/etc", "mode": "ro"}],
                          [{**d, "mode": "ro"} for d in h.dirs], [{**d, "guest": "/x"} for d in h.dirs]))
    elif field_name == "component":
        c = h.component
        new = rng.choice((dataclasses.replace(c, sha256="0" * 64), dataclasses.replace(c, size=c.size + 1),
                          dataclasses.replace(c, name="other.wasm"), dataclasses.replace(c, sha256=c.sha256.upper())))
    elif field_name == "extra":
        new = {"future_field": rng.choice((1, [1, 2], {"a": b"\x00"}, float("nan")))}
    else:
        new = rng.choice((0.0, -1.0, 1e300, float("nan"), float("inf")))
    return dataclasses.replace(trace, header=dataclasses.replace(h, **{field_name: new})), \
        f"header {field_name} -> {str(new)[:60]}"


RECORD_MUTATIONS: dict[str, Callable[[random.Random, Any], tuple[Any, str]]] = {
    "r-events": r_events, "r-result": r_result, "r-args": r_args, "r-call": r_call,
    "r-outcome": r_outcome, "r-header": r_header,
}


def via_jsonl(rng: random.Random, jsonl: bytes, fmt: str, scratch: Path) -> tuple[bytes, str]:
    """Edit one value in the JSONL form (a JSON-level type change), convert back with rr.trace."""
    from rr.trace import TraceError, convert

    lines = jsonl.split(b"\n")
    i = rng.randrange(0 if rng.random() < 0.2 else 1, len([ln for ln in lines if ln]))   # 0: the header
    obj = json.loads(lines[i])
    part = "result" if "call" in obj else rng.choice([k for k in obj if k != "t"] or ["t"])
    if "call" in obj:
        part = rng.choice(("result", "result", "args"))
    path = rng.choice(leaf_paths(obj[part]))
    new = rng.choice((0, -1, 18446744073709551616, 1.5, "", "x", True, None, [], {}, [0, 0], {"a": 1},
                      {"$bytes": "AAAA"}, {"$bytes": "A" * 40000}, {"$float": "nan"}, {"$float": "-inf"},
                      {"$int": "0x" + "1" * 3300}))
    obj[part] = replace_at(obj[part], path, new)
    lines[i] = json.dumps(obj).encode()
    src = scratch / "edit.jsonl"
    src.write_bytes(b"\n".join(lines))
    detail = f"line {i} {part}{list(path)} -> {json.dumps(new)[:40]}"
    if fmt == "jsonl":
        return src.read_bytes(), detail
    dst = scratch / f"edit.{fmt}"
    try:
        convert(src, dst, overwrite=True)
    except (TraceError, ValueError, TypeError, OverflowError) as e:
        raise NotApplicable(f"convert refused it: {e}") from None
    return dst.read_bytes(), detail + f" (converted to {fmt})"


# ------------------------------------------------------------------ making mutant i of seed s


@dataclass
class Source:
    """The originals of one recording in both formats, decoded once."""

    rec: Recording
    data: dict[str, bytes] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, rec: Recording) -> Source:
        from rr.trace import read_trace

        src = cls(rec)
        for fmt in FORMATS:
            src.data[fmt] = rec.data(fmt)
            src.trace[fmt] = read_trace(rec.traces[fmt])
        return src


ALL_KINDS = [*BYTE_MUTATIONS, *SEALED_MUTATIONS, *RECORD_MUTATIONS, "r-via-jsonl"]


def make_mutant(rng: random.Random, src: Source, fmt: str, kind: str, scratch: Path) -> Mutant:
    data = src.data[fmt]
    if kind in BYTE_MUTATIONS:
        out, detail = BYTE_MUTATIONS[kind](rng, data, fmt)
        return Mutant(src.rec.name, fmt, kind, "byte", out, detail)
    if kind in SEALED_MUTATIONS:
        out, detail = SEALED_MUTATIONS[kind](rng, data, fmt)
        return Mutant(src.rec.name, fmt, kind, "sealed", out, detail)
    if kind == "r-via-jsonl":
        out, detail = via_jsonl(rng, src.data["jsonl"], fmt, scratch)
        return Mutant(src.rec.name, fmt, kind, "record", out, detail)
    trace, detail = RECORD_MUTATIONS[kind](rng, src.trace[fmt])
    from rr.trace import TraceError
    try:
        out = _write(trace, scratch / f"w.{fmt}")
    except (ValueError, TypeError, OverflowError, RecursionError, TraceError) as e:
        raise NotApplicable(f"the writer refused it: {type(e).__name__}") from None
    return Mutant(src.rec.name, fmt, kind, "record", out, detail)


def mutant_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"rr-fuzz:{seed}:{index}")


def nth_mutant(seed: int, index: int, sources: Sequence[Source], scratch: Path,
               kinds: Sequence[str] = ALL_KINDS, tries: int = 20) -> Mutant | None:
    """Mutant `index` of `seed`: guest, format and kind drawn from its own generator; a kind that
    does not apply (or leaves the bytes as they were) is drawn again, at most `tries` times."""
    rng = mutant_rng(seed, index)
    for _ in range(tries):
        src = rng.choice(sources)
        fmt = rng.choice(FORMATS)
        kind = rng.choice(kinds)
        try:
            m = make_mutant(rng, src, fmt, kind, scratch)
        except NotApplicable:
            continue
        if m.data != src.data[fmt]:
            return m
    return None


# ------------------------------------------------------------------ replaying and classifying


@dataclass
class Replay:
    status: int | None        # None: did not finish (hang) / died of a signal (negative)
    stdout: bytes
    stderr: bytes             # guest stderr plus rr's lines (CLI), or the guest's alone (in-process)
    message: str = ""         # rr's error, in-process
    crash: str = ""           # a traceback or what killed it
    hang: bool = False


def _sealed_bytes(m: Mutant) -> bool:
    """A byte-level mutant of a sealed (.cbor) trace: a corruption, which rr must refuse, by the
    output check if nothing before. Any other mutant is an edit, replayed with --no-output-check
    to the story it tells (as-edited), as a user replays a hand-edited trace."""
    return m.level == "byte" and m.fmt.startswith("cbor")


def classify(rec: Recording, m: Mutant, r: Replay, cli: bool) -> str:
    if r.hang:
        return "FAIL-hang"
    if r.crash:
        return "FAIL-crash"
    if r.status is None or r.status < 0:
        return "FAIL-signal"
    if r.status == EXIT_INTERNAL or b"Traceback" in r.stderr or b"internal error" in r.stderr:
        return "FAIL-crash"
    if r.status in (EXIT_DIVERGED, EXIT_BAD_TRACE):
        rr_lines = [ln for ln in r.stderr.splitlines() if ln.startswith(b"rr: ")]
        if cli and not rr_lines:
            return "FAIL-unexplained"
        if r.status == EXIT_BAD_TRACE and not cli and "\n" in r.message:
            return "FAIL-multiline-122"
        if r.status == EXIT_BAD_TRACE and cli and not r.stderr.splitlines()[-1].startswith(b"rr: "):
            return "FAIL-multiline-122"
        return f"rejected-{r.status}"
    same = (r.status, r.stdout, story(rec, r.stderr)) == (rec.status, rec.stdout, rec.stderr)
    if same:
        return "identical"
    if r.status > 120 and r.status not in (134,):
        return f"FAIL-status-{r.status}"
    if m.level == "byte" and m.fmt.startswith("cbor"):
        return "FAIL-silent-wrong"
    return "as-edited"


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


class InProcess:
    """Replays mutants through rr.session.replay in this process (non-HTTP guests: mitmproxy
    allows one proxy per process). Replay has no wall-clock limit: a hang is cut by SIGALRM on
    the main thread (which waits for the guest thread); a guest thread still running then leaves
    the process `poisoned`, and the worker ends for a new one to go on."""

    def __init__(self, sources: Sequence[Source], scratch: Path, alarm: float = 40):
        from rr import runner
        self.programs = {s.rec.name: runner.load(s.rec.wasm) for s in sources if s.rec.in_process}
        self.recs = {s.rec.name: s for s in sources}
        self.scratch = scratch
        self.alarm = alarm
        self.poisoned = False    # a guest thread is still running after a hang: stop here

    def _tools(self, path: Path) -> str:
        """`rr inspect` (text and --json) and `rr convert` of the mutant, as library calls: they
        may refuse it (TraceError, which the CLI says in one line) but nothing else."""
        from rr.inspect import inspect_trace
        from rr.trace import TraceError, convert

        for what, call in (
                ("inspect", lambda: inspect_trace(str(path), out=_strict_text())),
                ("inspect --json", lambda: inspect_trace(str(path), as_json=True, out=_strict_text())),
                ("convert", lambda: convert(path, self.scratch / "converted.cbor", overwrite=True))):
            try:
                call()
            except TraceError:
                pass
            except Hang:
                raise
            except BaseException:  # noqa: BLE001
                return f"{what}: {traceback.format_exc()}"
        return ""

    def run(self, m: Mutant, replay_rejected: bool = True, tools: bool = False) -> tuple[str, Replay]:
        """Read the mutant with rr.trace's reader (with `tools`, also inspect and convert it), then
        replay it unless its records are the original's (the replay is then the original's) or,
        with `replay_rejected` false, the reader already refused it (class "reader-122": the
        replay would meet the same error)."""
        from rr import session
        from rr.errors import RRError
        from rr.trace import TraceError, read_trace

        src = self.recs[m.guest]
        path = self.scratch / f"mutant.{m.fmt}"
        path.write_bytes(m.data)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.alarm)
        threads = threading.active_count()
        try:
            refused = ""
            try:   # the reader alone first: a mutant that decodes to the same records replays the same
                same = _same_trace(read_trace(path), src.trace[m.fmt])
            except TraceError as e:
                if "\n" in str(e):
                    return "FAIL-multiline-122", Replay(EXIT_BAD_TRACE, b"", b"", message=str(e))
                refused, same = str(e), False
            except Hang:
                raise
            except BaseException:  # noqa: BLE001 - a reader bug is a finding
                return "FAIL-reader", Replay(None, b"", b"", crash=traceback.format_exc())
            if tools:
                problem = self._tools(path)
                if problem:
                    return "FAIL-tools", Replay(None, b"", b"", crash=problem)
            if same:
                return "identical", Replay(src.rec.status, src.rec.stdout, src.rec.stderr)
            if refused and not replay_rejected:
                return "reader-122", Replay(EXIT_BAD_TRACE, b"", b"", message=refused)
            out, err = io.BytesIO(), io.BytesIO()
            try:
                res = session.replay(self.programs[m.guest], str(path), out, err, check_output=_sealed_bytes(m))
            except RRError as e:
                r = Replay(e.status, out.getvalue(), err.getvalue(), message=str(e))
            except Hang:
                raise
            except BaseException:  # noqa: BLE001
                r = Replay(EXIT_INTERNAL, out.getvalue(), err.getvalue(), crash=traceback.format_exc())
            else:
                status = res.outcome.status   # as rr's CLI: a replay of an incomplete trace is a 122
                if res.incomplete:
                    status = EXIT_BAD_TRACE
                elif res.stopped_at is not None:
                    status = 0
                r = Replay(status, out.getvalue(), err.getvalue(),
                           message=f"trace is incomplete ({res.incomplete})" if res.incomplete else "")
        except Hang:
            r = Replay(None, b"", b"", hang=True)
            self.poisoned = threading.active_count() > threads
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return classify(src.rec, m, r, cli=False), r


def _strict_text() -> io.TextIOWrapper:
    """A text stream that fails as sys.stdout does on what is not UTF-8."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")


def _same_trace(a: Any, b: Any) -> bool:
    return (a.header, a.events, a.outcome, a.complete) == (b.header, b.events, b.outcome, b.complete)


def replay_cli(rec: Recording, m: Mutant, path: Path, timeout: float = 90, pipe: bool = False) -> tuple[str, Replay]:
    """`python -m rr replay` of a mutant written to `path`, or with `pipe` read from a pipe."""
    path.write_bytes(m.data)
    flags = [] if _sealed_bytes(m) else ["--no-output-check"]   # as the in-process replay does
    try:
        if pipe:
            done = subprocess.run([*RR, "replay", *flags, str(rec.wasm), "/dev/stdin"], capture_output=True,
                                  cwd=REPO, env=_env(), timeout=timeout, input=m.data)
        else:
            done = subprocess.run([*RR, "replay", *flags, str(rec.wasm), str(path)], capture_output=True,
                                  cwd=REPO, env=_env(), timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        r = Replay(None, e.stdout or b"", e.stderr or b"", hang=True)
    else:
        r = Replay(done.returncode, done.stdout, done.stderr)
    return classify(rec, m, r, cli=True), r


def describe(seed: int, index: int, m: Mutant, cls: str, r: Replay) -> str:
    what = (r.crash.strip().splitlines() or [""])[-1] if r.crash else (
        r.message.splitlines()[0] if r.message else
        (r.stderr.decode(errors="replace").strip().splitlines() or [""])[-1])
    return (f"{cls}: seed {seed} mutant {index}: {m.guest}.{m.fmt} {m.kind} ({m.detail}) -> "
            f"status {r.status}: {what[:300]}")


def save(m: Mutant, where: Path, seed: int, index: int) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"s{seed}-m{index}-{m.guest}-{m.kind}.{m.fmt}"
    path.write_bytes(m.data)
    return path




# ------------------------------------------------------------------ the corpus on disk


def save_corpus(recs: Sequence[Recording], workdir: Path) -> Path:
    path = workdir / "corpus.json"
    path.write_text(json.dumps([{
        "name": r.name, "wasm": str(r.wasm), "traces": {k: str(v) for k, v in r.traces.items()},
        "status": r.status, "stdout": base64.b64encode(r.stdout).decode(),
        "stderr": base64.b64encode(r.stderr).decode(), "http": r.http, "served": r.served} for r in recs], indent=1))
    return path


def load_corpus(path: Path) -> list[Recording]:
    return [Recording(d["name"], Path(d["wasm"]), {k: Path(v) for k, v in d["traces"].items()}, d["status"],
                      base64.b64decode(d["stdout"]), base64.b64decode(d["stderr"]), d["http"], d.get("served", False))
            for d in json.loads(path.read_text())]


# ------------------------------------------------------------------ running many mutants


@dataclass
class Tally:
    """Outcome counts per class and per (kind, class), and every failure's one-line reproducer."""

    classes: dict[str, int] = field(default_factory=dict)
    by_kind: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    mutants: int = 0

    def add(self, kind: str, cls: str, failure: str | None = None) -> None:
        self.mutants += 1
        self.classes[cls] = self.classes.get(cls, 0) + 1
        self.by_kind[(kind, cls)] = self.by_kind.get((kind, cls), 0) + 1
        if failure:
            self.failures.append(failure)

    def merge(self, other: Tally) -> None:
        for k, v in other.classes.items():
            self.classes[k] = self.classes.get(k, 0) + v
        for k, v in other.by_kind.items():
            self.by_kind[k] = self.by_kind.get(k, 0) + v
        self.failures += other.failures
        self.mutants += other.mutants

    def failed(self) -> int:
        return sum(v for k, v in self.classes.items() if k.startswith("FAIL"))


def worker_main(argv: Sequence[str]) -> int:
    """`python tests/tracefuzz.py CORPUS SEED START END SCRATCH EVERY [SAVE_DIR]`: mutants
    START..END-1 replayed in this one process (of those the reader refuses, every EVERY-th); one JSON line per mutant on stdout, preceded by a
    {"begin": i} line, so a supervisor can tell which mutant a dead worker was on."""
    corpus, seed, start, end, scratch = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
    every = int(argv[5])
    save_dir = Path(argv[6]) if len(argv) > 6 else None
    scratch.mkdir(parents=True, exist_ok=True)
    sources = [Source.load(r) for r in load_corpus(corpus) if r.in_process]
    runner = InProcess(sources, scratch)
    out = sys.stdout
    for i in range(start, end):
        try:
            m = nth_mutant(seed, i, sources, scratch)
        except Exception:  # noqa: BLE001 - rr.trace's writer or the harness failed making it: a finding
            out.write(json.dumps({"i": i, "kind": "(making it)", "cls": "FAIL-making",
                                  "failure": f"FAIL-making: seed {seed} mutant {i}: {traceback.format_exc()[-600:]}"})
                      + "\n")
            out.flush()
            continue
        if m is None:
            out.write(json.dumps({"i": i, "skip": True}) + "\n")
            continue
        out.write(json.dumps({"begin": i, "kind": m.kind, "guest": m.guest, "fmt": m.fmt,
                              "detail": m.detail[:200]}) + "\n")
        out.flush()
        cls, r = runner.run(m, replay_rejected=i % every == 0, tools=i % 4 == 0)
        line: dict[str, Any] = {"i": i, "kind": m.kind, "cls": cls}
        if cls.startswith("FAIL"):
            line["failure"] = describe(seed, i, m, cls, r)
            if save_dir is not None:
                line["failure"] += f" [saved {save(m, save_dir, seed, i)}]"
        out.write(json.dumps(line) + "\n")
        out.flush()
        if runner.poisoned:
            return 3   # a hung guest thread is still running: the supervisor starts a new worker
    return 0


def run_inprocess(corpus: Path, seed: int, start: int, count: int, scratch: Path,
                  save_dir: Path | None = None, every: int = 1, stall: float = 120,
                  progress: Callable[[int], None] | None = None, deadline: float | None = None) -> Tally:
    """Mutants start..start+count-1 replayed in-process by one worker process; a worker that dies
    (a signal: rr crashed hard) or goes silent for `stall` seconds is counted as that mutant's
    failure and a new worker goes on from the next mutant."""
    tally = Tally()
    i, end = start, start + count
    out_of_time = False
    while i < end and not out_of_time:
        cmd = [sys.executable, str(Path(__file__)), str(corpus), str(seed), str(i), str(end), str(scratch), str(every)]
        if save_dir is not None:
            cmd.append(str(save_dir))
        err = open(scratch / "worker.stderr", "ab")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO, env=_env())
        begun: dict[str, Any] | None = None
        timer = threading.Timer(stall, proc.kill)
        timer.start()
        assert proc.stdout is not None
        for raw in proc.stdout:
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()   # out of time: what was done so far is the result
                begun, out_of_time = None, True
                break
            timer.cancel()
            timer = threading.Timer(stall, proc.kill)
            timer.start()
            msg = json.loads(raw)
            if "begin" in msg:
                begun = msg
                continue
            begun = None
            i = msg["i"] + 1
            if progress:
                progress(i)
            if msg.get("skip"):
                continue
            tally.add(msg["kind"], msg["cls"], msg.get("failure"))
        timer.cancel()
        rc = proc.wait()
        err.close()
        if begun is not None:   # the worker died or stalled on this mutant
            cls = "FAIL-hang" if rc == -signal.SIGKILL else "FAIL-signal"
            failure = (f"{cls}: seed {seed} mutant {begun['begin']}: {begun['guest']}.{begun['fmt']} "
                       f"{begun['kind']} ({begun['detail']}) -> worker ended with {rc}")
            if save_dir is not None:   # made again here: the worker could not save it
                sources = [Source.load(r) for r in load_corpus(corpus) if r.in_process]
                m = nth_mutant(seed, begun["begin"], sources, scratch)
                if m is not None:
                    failure += f" [saved {save(m, save_dir, seed, begun['begin'])}]"
            tally.add(begun["kind"], cls, failure)
            i = begun["begin"] + 1
        elif rc not in (0, 3) and not out_of_time:
            raise RuntimeError(f"fuzz worker failed with {rc} outside a mutant: see {scratch / 'worker.stderr'}")
    return tally


def run_cli(recs: Sequence[Recording], seed: int, start: int, count: int, scratch: Path,
            workers: int = 2, save_dir: Path | None = None, timeout: float = 90,
            progress: Callable[[int], None] | None = None, deadline: float | None = None) -> Tally:
    """Mutants start..start+count-1 of these recordings (HTTP included), each replayed by a
    `python -m rr replay` subprocess, `workers` at a time; odd-numbered ones read the trace from
    a pipe (/dev/stdin) instead of a file."""
    from concurrent.futures import ThreadPoolExecutor

    sources = [Source.load(r) for r in recs]
    by_name = {s.rec.name: s.rec for s in sources}
    scratch.mkdir(parents=True, exist_ok=True)
    mutants = []
    for i in range(start, start + count):
        m = nth_mutant(seed, i, sources, scratch)
        if m is not None:
            mutants.append((i, m))

    def one(job: tuple[int, Mutant]) -> tuple[int, Mutant, str, Replay] | None:
        i, m = job
        if deadline is not None and time.monotonic() > deadline:
            return None
        cls, r = replay_cli(by_name[m.guest], m, scratch / f"cli-{i}.{m.fmt}", timeout, pipe=i % 2 == 1)
        (scratch / f"cli-{i}.{m.fmt}").unlink()
        return i, m, cls, r

    tally = Tally()
    with ThreadPoolExecutor(workers) as pool:
        for n, done in enumerate(pool.map(one, mutants), 1):
            if done is None:
                continue
            i, m, cls, r = done
            failure = None
            if cls.startswith("FAIL"):
                failure = describe(seed, i, m, cls, r)
                if save_dir is not None:
                    failure += f" [saved {save(m, save_dir, seed, i)}]"
            tally.add(m.kind, cls, failure)
            if progress:
                progress(n)
    return tally


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
