"""Coverage-guided fuzzing of rr's C trace decoder and cursor (rr/_native.c) under ASan + UBSan,
checked against the pure-Python reader.

    pip install atheris                      # once (a wheel: libFuzzer + its ASan runtime)
    python benchmarks/fuzz_native.py --workdir DIR [--seeds DIR ...] [--time S] [-- libFuzzer flags]
    python benchmarks/fuzz_native.py --workdir DIR --only FILE...   # run saved inputs again

It builds rr/_native.c with clang (CC, else clang / clang-19) and -fsanitize=address,undefined,
fuzzer-no-link into DIR/build, re-executes itself with atheris's ASan + libFuzzer runtime in
LD_PRELOAD, and loads that build as rr._native (the installed one is not touched). The seed corpus
is DIR/seeds: real recordings made with `python -m rr record` (clock, random, echo_stdin, fs_ops,
bigout, http_get against a loopback server, tcp_client against a loopback echo server, an
`rr serve` trace of serve_c, and benchmarks/guests/hostcall_loop.wat making 24 random / clock
calls, whose replay takes its events straight from the cursor), as .cbor, .jsonl and .cbor.gz;
--seeds adds more files.

One input is a control byte and a trace file. Bit 0 of the control byte: recompute the frames'
CRC chain first (else almost every mutation dies at the first checksum and never reaches a
decoder). Each input is then read by rr.trace's TraceReader three ways: through the C cursor over
a mapped file, streamed with the C event decoder (event_record), and with RR_NATIVE=0 (Python
alone). All three must give the same header, events (by repr: True is not 1), outcome and
incompleteness, or the same TraceError message (so the same record index and byte offset); any
other exception is a bug (a traceback or an exit 70 for a user's bad file). Then the cursor's
own methods are driven over the same mapping at every frame start and at arbitrary offsets
(step, vouched, event_at), and every frame body that starts like an event is decoded by C
(event_record) and by cbor2 as CborDecoder._record does: when C decodes it, the values must be
the same. A crash, a sanitizer report or a disagreement stops libFuzzer with the input saved in
DIR/crashes (DIR/corpus keeps what it found).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import nativefuzz  # noqa: E402


# ------------------------------------------------------------------ the sanitized build


def runtime_dir() -> Path:
    import atheris
    return Path(atheris.path())


def build(out: Path) -> Path:
    """rr/_native.c with ASan, UBSan and libFuzzer's coverage; rebuilt when the source is newer."""
    src = REPO / "rr" / "_native.c"
    so = out / ("_native" + sysconfig.get_config_var("EXT_SUFFIX"))
    if so.exists() and so.stat().st_mtime > src.stat().st_mtime:
        return so
    cc = os.environ.get("CC") or shutil.which("clang") or shutil.which("clang-19")
    if cc is None:
        sys.exit("fuzz_native: no clang (apt-get install clang); CC=... names another")
    out.mkdir(parents=True, exist_ok=True)
    # -fno-sanitize=function: atheris's runtime predates that check's handler
    cmd = [cc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
           "-fsanitize=address,undefined,fuzzer-no-link", "-fno-sanitize=function",
           "-fno-sanitize-recover=undefined", f"-I{sysconfig.get_paths()['include']}", str(src), "-o", str(so)]
    subprocess.run(cmd, check=True)
    return so


def sanitizer_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(runtime_dir() / "asan_with_fuzzer.so")
    # Python itself leaks by design; wasmtime handles its own signals
    env["ASAN_OPTIONS"] = "detect_leaks=0:handle_segv=1:allow_user_segv_handler=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:abort_on_error=1:print_stacktrace=1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def load_sanitized(so: Path) -> None:
    """The sanitized build as rr._native, before rr.nativelib imports it."""
    spec = importlib.util.spec_from_file_location("rr._native", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rr._native"] = mod
    spec.loader.exec_module(mod)


# ------------------------------------------------------------------ seeds: real recordings


def record_seeds(seeds: Path) -> None:
    import guests
    import tracefuzz as tf
    from httpservers import TestServer
    from sockservers import TcpEchoServer

    seeds.mkdir(parents=True, exist_ok=True)
    work = seeds.parent / "recordings"
    work.mkdir(parents=True, exist_ok=True)
    with TestServer() as server:
        cases = tf.guest_cases(work, server.url("/bytes?n=3000"))
        recs = [tf.record(c, work) for c in cases if c.name != "http_stream"]
        recs.append(tf.record_served(work, server.url("/bytes?n=3000")))
    with TcpEchoServer() as echo:
        case = tf.GuestCase("tcp_client", tf.C_BIN / "tcp_client.wasm", ("4", str(echo.port), "hello rr"),
                            flags=("--allow-net", echo.address))
        try:
            recs.append(tf.record(case, work))
        except RuntimeError as e:   # a seed less, not a reason to stop
            print(f"  tcp_client not recorded: {e}")
    loop = guests.build_wat(REPO / "benchmarks" / "guests" / "hostcall_loop.wat", work)
    for call in ("random", "now"):
        recs.append(tf.record(tf.GuestCase(f"loop_{call}", loop, (call, "24")), work))
    for r in recs:
        for fmt, path in r.traces.items():
            write_seeds(seeds, r.name, fmt, path.read_bytes(), r.wasm.name in nativefuzz.REPLAYED)


def write_seeds(seeds: Path, name: str, fmt: str, data: bytes, replayed: bool) -> None:
    """A recording as seeds: as it is (CRCs recomputed: as recorded); a .cbor also with bare
    records (reframed) and restructured, and for a guest of nativefuzz.REPLAYED again, replayed."""
    (seeds / f"{name}.{fmt}").write_bytes(b"\x01" + data)
    if fmt == "cbor":
        (seeds / f"{name}-bare.cbor").write_bytes(b"\x05" + nativefuzz.bare(data))
        (seeds / f"{name}-restructured.cbor").write_bytes(b"\x0d" + nativefuzz.bare(data) + b"\0\0\0\1")
        if replayed:
            (seeds / f"{name}-replayed.cbor").write_bytes(b"\x03" + data)
            (seeds / f"{name}-bare-replayed.cbor").write_bytes(b"\x07" + nativefuzz.bare(data))
            (seeds / f"{name}-restructured-replayed.cbor").write_bytes(b"\x0f" + nativefuzz.bare(data) + b"\0\0\0\2")


# CBOR heads the decoders branch on: floats and simple values, event heads, long ints and
# lengths, tags, indefinite lengths, maps (libFuzzer splices these in)
DICTIONARY = ["\\xf4", "\\xf5", "\\xf6", "\\xf7", "\\xf8\\x20", "\\xf9\\x3c\\x00", "\\xfa\\x3f\\x80\\x00\\x00",
              "\\xfb\\x3f\\xf0\\x00\\x00\\x00\\x00\\x00\\x00", "\\x83", "\\x84", "\\x80", "\\x81", "\\x82",
              "\\x1b\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff", "\\x3b\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff",
              "\\x5b\\x00\\x00\\x00\\x00\\x20\\x00\\x00\\x04", "\\x9f", "\\x5f", "\\x7f", "\\xff", "\\xc2", "\\xd9\\xd9\\xf7",
              "\\xa1", "\\xa3", "\\x00\\x00\\x00\\x00"]


# ------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True, help="build, seeds, corpus and crashes here (kept)")
    p.add_argument("--seeds", type=Path, action="append", default=[], help="more seed files (a folder)")
    p.add_argument("--time", type=int, default=600, help="seconds of fuzzing (libFuzzer's -max_total_time)")
    p.add_argument("--only", type=Path, nargs="+", help="run these inputs once each (no fuzzing)")
    p.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags (after --)")
    args = p.parse_args()
    work = args.workdir.resolve()
    so = build(work / "build")
    seeds = work / "seeds"
    if not seeds.is_dir() and not args.only:   # recorded by the installed rr, before the sanitizers
        print("recording the seed corpus ...", flush=True)
        record_seeds(seeds)
    if "asan_with_fuzzer" not in os.environ.get("LD_PRELOAD", ""):
        env = sanitizer_env(work)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    import atheris
    load_sanitized(so)
    nativefuzz.GUEST_DIRS.append(work / "recordings")   # hostcall_loop.wasm
    with atheris.instrument_imports(include=["rr.trace", "rr.nativelib", "cbor2"]):
        import rr.trace.cbor  # noqa: F401
        import rr.trace.jsonl  # noqa: F401
        import rr.trace.reader  # noqa: F401
    from rr import nativelib
    if nativelib.why_not:
        sys.exit(f"fuzz_native: the sanitized build is not used: {nativelib.why_not}")

    scratch = Path("/dev/shm" if Path("/dev/shm").is_dir() else work) / f"rr-fuzz-native-{os.getpid()}"
    scratch.mkdir(exist_ok=True)

    if args.only:
        failed = 0
        for f in args.only:
            try:
                nativefuzz.one_input(f.read_bytes(), scratch)
                print(f"{f}: ok")
            except AssertionError as e:
                failed += 1
                print(f"{f}: {e}")
        return 1 if failed else 0

    corpus, crashes = work / "corpus", work / "crashes"
    corpus.mkdir(exist_ok=True)
    crashes.mkdir(exist_ok=True)
    extra = [str(s) for s in args.seeds]
    dictionary = work / "cbor.dict"
    dictionary.write_text("".join(f'"{token}"\n' for token in DICTIONARY))
    flags = [sys.argv[0], str(corpus), str(seeds), *extra, f"-dict={dictionary}", "-use_value_profile=1", f"-max_total_time={args.time}", "-max_len=65536",
             "-timeout=20", "-rss_limit_mb=3072", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
             *args.libfuzzer]
    started = time.monotonic()
    print(f"fuzzing {so.name} for {args.time} s: {' '.join(flags[1:])}", flush=True)
    atheris.Setup(flags, lambda raw: nativefuzz.one_input(raw, scratch))
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"{time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
