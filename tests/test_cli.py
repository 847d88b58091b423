"""Every user mistake is one line `rr: ...` on stderr with its status from EXIT_STATUSES.

Each case runs the real CLI (`python -m rr`) as a subprocess on real files: the committed
components, WAT compiled now (a core module, a component that is not a command), a trace
recorded here. Closed and early-closed stdio are compared with the wasmtime CLI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

import guests
from guests import Ran
from rr.cli import exit_status_epilog
from rr.errors import (EXIT_BAD_TRACE, EXIT_PIPE, EXIT_STATUSES, EXIT_USAGE)

RANDOM = guests.c_guest("random")
CLOCK = guests.c_guest("clock")
HTTP_GET = guests.c_guest("http_get")
BIGOUT = guests.c_guest("bigout")
BIGIN = guests.c_guest("bigin")
ECHO_STDIN = guests.c_guest("echo_stdin")
COMMANDS = ["run", "record", "replay", "convert", "har", "flows", "inspect"]


def rr(*argv: str | Path, cwd: Path, stdin: bytes = b"", prefix: tuple[str, ...] = ()) -> Ran:
    cmd = [*prefix, sys.executable, "-m", "rr", *map(str, argv)]
    done = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, timeout=guests.RUN_TIMEOUT,
                          env=guests._clean_env({"PYTHONPATH": str(guests.REPO)}))
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of wrong inputs, plus one good trace (t.cbor of random.wasm)."""
    d = tmp_path_factory.mktemp("mistakes")
    (d / "text.wasm").write_text("this is not wasm\n")
    (d / "core.wasm").write_bytes(wasmtime.wat2wasm("(module)"))
    (d / "nocmd.wasm").write_bytes(wasmtime.wat2wasm("(component)"))
    (d / "adir").mkdir()
    (d / "afile").write_text("x\n")
    (d / "empty.cbor").write_bytes(b"")
    (d / "garbage.cbor").write_bytes(b"\x00\x01 not a trace")
    (d / "not.pem").write_text("hello\n")
    shutil.copy(RANDOM, d / "guest.wasm")
    ran = rr("record", RANDOM, "-t", "t.cbor", cwd=d)
    assert ran.status == 0, ran.err
    return d


# (id, argv, status, what the line must name). {random} etc. are the committed guests.
MISTAKES: list[tuple[str, list[str], int, str]] = [
    ("no command", [], EXIT_USAGE, "no command: choose one of run, record"),
    ("unknown command", ["bogus"], EXIT_USAGE, "'bogus'"),
    ("unknown option", ["--bogus"], EXIT_USAGE, "--bogus"),
    ("replay: stray argument", ["replay", "{random}", "t.cbor", "extra"], EXIT_USAGE, "extra"),
    ("inspect: unknown option", ["inspect", "t.cbor", "--foo"], EXIT_USAGE, "--foo"),
    ("--until -1", ["replay", "{random}", "t.cbor", "--until", "-1"], EXIT_USAGE, "--until"),
    ("--until x", ["replay", "{random}", "t.cbor", "--until", "x"], EXIT_USAGE, "'x'"),
    ("--limit -1", ["inspect", "t.cbor", "--limit", "-1"], EXIT_USAGE, "--limit"),
    ("--inspect-port 0", ["record", "{random}", "-t", "o.cbor", "--inspect-port", "0"], EXIT_USAGE, "1-65535"),
    ("--inspect-port 70000", ["record", "{random}", "-t", "o.cbor", "--inspect-port", "70000"], EXIT_USAGE,
     "1-65535"),
    ("--inspect-port without --inspect", ["record", "{random}", "-t", "o.cbor", "--inspect-port", "8081"],
     EXIT_USAGE, "need --inspect"),
    ("--inspect-host not this machine's", ["record", "{http_get}", "-t", "o.cbor", "--inspect", "--inspect-host",
                                           "192.0.2.1", "--", "http://127.0.0.1:9/"], EXIT_USAGE,
     "192.0.2.1"),
    ("replay with --", ["replay", "{random}", "t.cbor", "--", "x"], EXIT_USAGE, "come from the trace"),
    ("inspect with --", ["inspect", "t.cbor", "--"], EXIT_USAGE, "takes no `--` arguments"),
    ("record onto the component", ["record", "guest.wasm", "-t", "guest.wasm", "--force"], EXIT_USAGE,
     "the component itself"),
    ("record: trace name without a format", ["record", "{random}", "-t", "o.txt"], EXIT_USAGE, "o.txt"),
    ("convert: output name without a format", ["convert", "t.cbor", "o.txt"], EXIT_USAGE, "o.txt"),
    ("-f xml", ["record", "{random}", "-t", "o.cbor", "-f", "xml"], EXIT_USAGE, "'xml'"),
    ("--max-memory lots", ["run", "{random}", "--max-memory", "lots"], EXIT_USAGE, "'lots'"),
    ("har without -o", ["har", "t.cbor"], EXIT_USAGE, "-o/--output"),
    ("--ca-cert missing", ["record", "{random}", "-t", "o.cbor", "--ca-cert", "nope.pem"], EXIT_USAGE,
     "nope.pem: no such file"),
    ("--ca-cert not PEM", ["record", "{random}", "-t", "o.cbor", "--ca-cert", "not.pem"], EXIT_USAGE,
     "not.pem: not a PEM"),
    ("--ca-cert a directory", ["record", "{random}", "-t", "o.cbor", "--ca-cert", "adir"], EXIT_USAGE, "adir"),
    ("--dir missing", ["run", "{random}", "--dir", "nodir"], EXIT_USAGE, "nodir is not a directory"),
    ("--dir a file", ["run", "{random}", "--dir", "afile"], EXIT_USAGE, "afile is not a directory"),
    ("--dir-rw missing", ["record", "{random}", "-t", "o.cbor", "--dir-rw", "nodir::/x"], EXIT_USAGE, "nodir"),
    ("--env without =", ["run", "{random}", "--env", "FOO"], EXIT_USAGE, "--env 'FOO': expected K=V"),
    ("--env empty name", ["run", "{random}", "--env", "=x"], EXIT_USAGE, "expected K=V"),
    ("har output exists", ["har", "t.cbor", "-o", "afile"], EXIT_USAGE, "--force"),
    ("har into a missing directory", ["har", "t.cbor", "-o", "nodir/t.har"], EXIT_USAGE, "nodir/t.har"),
    ("replay: another component", ["replay", "{clock}", "t.cbor"], EXIT_BAD_TRACE, "different component"),
]
# Every command that loads a component, with each kind of wrong component.
for _cmd in ["run", "record", "replay"]:
    _rest = {"run": [], "record": ["-t", "o.cbor"], "replay": ["t.cbor"]}[_cmd]
    MISTAKES += [
        (f"{_cmd}: no component", [_cmd], EXIT_USAGE, "component"),
        (f"{_cmd}: missing component", [_cmd, "nope.wasm", *_rest], EXIT_USAGE, "nope.wasm: no such file"),
        (f"{_cmd}: a directory as component", [_cmd, "adir", *_rest], EXIT_USAGE, "adir"),
        (f"{_cmd}: a text file as component", [_cmd, "text.wasm", *_rest], EXIT_USAGE,
         "text.wasm: not a WebAssembly file"),
        (f"{_cmd}: a core module", [_cmd, "core.wasm", *_rest], EXIT_USAGE, "core.wasm: is a core wasm module"),
        (f"{_cmd}: not a command", [_cmd, "nocmd.wasm", *_rest], EXIT_USAGE, "nocmd.wasm: not a wasi:cli command"),
    ]
# Every command that reads a trace, with each kind of wrong trace.
for _cmd in ["replay", "convert", "har", "flows", "inspect"]:
    def _argv(trace: str, cmd: str = _cmd) -> list[str]:
        return {"replay": ["replay", "{random}", trace], "convert": ["convert", trace, "o.jsonl"],
                "har": ["har", trace, "-o", "o.har"], "flows": ["flows", trace, "-o", "o.mitm"],
                "inspect": ["inspect", trace]}[cmd]
    MISTAKES += [
        (f"{_cmd}: missing trace", _argv("nope.cbor"), EXIT_BAD_TRACE, "nope.cbor: no such file"),
        (f"{_cmd}: empty trace", _argv("empty.cbor"), EXIT_BAD_TRACE, "empty.cbor"),
        (f"{_cmd}: not a trace", _argv("garbage.cbor"), EXIT_BAD_TRACE, "garbage.cbor: not an rr trace"),
        (f"{_cmd}: a directory as trace", _argv("adir"), EXIT_BAD_TRACE, "adir"),
    ]


def _expand(argv: list[str]) -> list[str]:
    return [a.format(random=RANDOM, clock=CLOCK, http_get=HTTP_GET) for a in argv]


def _assert_one_line(ran: Ran, status: int, names: str) -> None:
    lines = ran.err.splitlines()
    assert ran.status == status, ran.err
    assert len(lines) == 1 and lines[0].startswith("rr: "), ran.err
    assert names in lines[0], lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in ran.err


@pytest.mark.parametrize("argv,status,names", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistake_is_one_line_with_its_status(files: Path, argv: list[str], status: int, names: str) -> None:
    before = [(files / name).read_bytes() for name in ("t.cbor", "guest.wasm")]
    _assert_one_line(rr(*_expand(argv), cwd=files), status, names)
    # A mistake never touches recorded data or the component.
    assert [(files / name).read_bytes() for name in ("t.cbor", "guest.wasm")] == before
    for out in ("o.cbor", "o.jsonl", "o.har", "o.mitm", "o.txt"):
        assert not (files / out).exists(), f"{out} left behind"


def test_argument_error_names_the_command_and_its_help(files: Path) -> None:
    ran = rr("replay", RANDOM, "t.cbor", "--until", "-1", cwd=files)
    assert ran.err == ("rr: replay: argument --until: expected a count (0, 1, 2, ...), got '-1' "
                       "(see rr replay --help)\n")


@pytest.mark.parametrize("argv,meant", [
    (["run", "{random}", "--foo"], ["run", "{random}", "--", "--foo"]),
    (["record", "{random}", "-t", "x.cbor", "-n", "5"], ["record", "{random}", "-t", "x.cbor", "--", "-n", "5"]),
    (["run", "{random}", "a", "--timeout", "5", "-n", "5", "--", "z"],
     ["run", "{random}", "a", "--timeout", "5", "--", "-n", "5", "z"]),
], ids=["run --foo", "record -n 5", "with -- already"])
def test_guest_flags_before_dashdash_are_shown_after_it(files: Path, argv: list[str], meant: list[str]) -> None:
    ran = rr(*_expand(argv), cwd=files)
    _assert_one_line(ran, EXIT_USAGE, "arguments for the guest go after `--`")
    assert f"as in: rr {' '.join(_expand(meant))} (see rr {argv[0]} --help)" in ran.err
    assert not (files / "x.cbor").exists()
    # ... and the command shown is right: the guest receives exactly those arguments.
    if argv[0] == "run":
        assert rr(*_expand(meant), cwd=files).status == 0


def test_guest_flag_is_not_taken_for_an_abbreviated_rr_option(files: Path) -> None:
    # argparse would read --inh as --inherit-env: rr takes no abbreviations.
    _assert_one_line(rr("run", RANDOM, "--inh", cwd=files), EXIT_USAGE, "--inh")


def test_ca_cert_that_is_a_real_ca_is_taken(files: Path) -> None:
    # The PEM check must not refuse a real CA: with it the HTTPS exchange verifies, without
    # it the guest gets a TLS error.
    from httpservers import PLAIN_BODY, TestServer, make_tls_files
    tls = make_tls_files(files)
    with TestServer(tls) as server:
        url = server.url("/plain")
        grant = ["--allow-http", f"localhost:{server.port}"]
        ok = rr("record", HTTP_GET, "-t", "tls.cbor", "--force", *grant, "--ca-cert", tls.ca_cert, "--", url,
                cwd=files)
        refused = rr("record", HTTP_GET, "-t", "notls.cbor", "--force", *grant, "--", url, cwd=files)
    assert ok.status == 0 and PLAIN_BODY in ok.stdout, ok.err
    assert refused.status != 0 and PLAIN_BODY not in refused.stdout


def test_web_ui_port_in_use(files: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        ran = rr("record", HTTP_GET, "-t", "o.cbor", "--inspect", "--inspect-port", port, "--",
                 "http://127.0.0.1:9/", cwd=files)
    _assert_one_line(ran, EXIT_USAGE, f"127.0.0.1:{port}")
    assert "--inspect" in ran.err and "Address already in use" in ran.err
    assert not (files / "o.cbor").exists()  # said before anything was recorded


def test_unreadable_files(files: Path) -> None:
    secret_wasm = files / "secret.wasm"
    secret_trace = files / "secret.cbor"
    shutil.copy(RANDOM, secret_wasm)
    shutil.copy(files / "t.cbor", secret_trace)
    for path in (secret_wasm, secret_trace):
        path.chmod(0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # root reads any file; without these two capabilities it cannot read a 000 file.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE")
        prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search")
        probe = subprocess.run([*prefix, "cat", str(secret_wasm)], capture_output=True)
        if probe.returncode == 0:
            pytest.skip("cannot make a file unreadable here")
    _assert_one_line(rr("run", secret_wasm, cwd=files, prefix=prefix), EXIT_USAGE,
                     "secret.wasm: cannot read: Permission denied")
    for argv in (["replay", RANDOM, secret_trace], ["inspect", secret_trace]):
        _assert_one_line(rr(*argv, cwd=files, prefix=prefix), EXIT_BAD_TRACE,
                         "secret.cbor: cannot read: Permission denied")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_shows_the_exit_status_table(files: Path, command: str | None) -> None:
    ran = rr(*([command] if command else []), "--help", cwd=files)
    assert ran.status == 0
    shown = " ".join(ran.out.split())
    assert " ".join(exit_status_epilog().split()) in shown
    for status, meaning in EXIT_STATUSES:
        assert f"{status} {meaning}" in shown


# ---- closed and early-closed stdio, against the wasmtime CLI ----------------------------------

def _shell(cmd: list[str], redirect: str, cwd: Path) -> Ran:
    """Run `cmd` with a shell redirection such as `>&-` (a really closed descriptor)."""
    done = subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", *cmd], capture_output=True, cwd=cwd,
                          timeout=guests.RUN_TIMEOUT, env=guests._clean_env({"PYTHONPATH": str(guests.REPO)}))
    return Ran(done.returncode, done.stdout, done.stderr)


def _rr_cmd(*argv: str | Path) -> list[str]:
    return [sys.executable, "-m", "rr", *map(str, argv)]


@pytest.mark.parametrize("redirect,guest,args", [
    (">&-", BIGOUT, ["1"]),          # bigout reports a failed write (perror) and exits 1
    ("2>&-", BIGOUT, ["1"]),
    ("<&-", ECHO_STDIN, []),
], ids=["stdout closed", "stderr closed", "stdin closed"])
def test_closed_stdio_as_wasmtime(files: Path, wasmtime_bin: Path, redirect: str, guest: Path,
                                  args: list[str]) -> None:
    ref = _shell([str(wasmtime_bin), "run", str(guest), *args], redirect, files)
    run = _shell(_rr_cmd("run", guest, "--", *args), redirect, files)
    assert (run.status, run.stdout, run.stderr) == (ref.status, ref.stdout, ref.stderr)
    trace = files / f"closed{redirect.replace('&', '').replace('-', '')}.cbor"
    rec = _shell(_rr_cmd("record", guest, "-t", trace, "--force", "--", *args), redirect, files)
    assert (rec.status, rec.stdout) == (ref.status, ref.stdout)
    assert "Traceback" not in rec.err
    rep = _shell(_rr_cmd("replay", guest, trace), redirect, files)
    assert (rep.status, rep.stdout, rep.stderr) == (ref.status, ref.stdout, ref.stderr)


def test_closed_stdout_does_not_receive_the_trace(files: Path) -> None:
    # With fd 1 closed, the trace file would be opened as fd 1 and get the guest's stdout.
    trace = files / "fd1.cbor"
    rec = _shell(_rr_cmd("record", RANDOM, "-t", trace, "--force"), ">&-", files)
    assert rec.status == 0, rec.err
    ran = rr("inspect", trace, cwd=files)
    assert ran.status == 0 and "exit status 0" in ran.out


def _reader_closes_early(cmd: list[str], cwd: Path, stdin: bytes = b"") -> Ran:
    """Run `cmd` with stdout a pipe whose reader takes one byte and closes it (`| head -c1`)."""
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                          env=guests._clean_env({"PYTHONPATH": str(guests.REPO)})) as p:
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        p.stdin.write(stdin)
        p.stdin.close()
        first = p.stdout.read(1)
        p.stdout.close()
        err = p.stderr.read()
        status = p.wait(guests.RUN_TIMEOUT)
    return Ran(status, first, err)


def test_stdout_pipe_closed_early_as_wasmtime(files: Path, wasmtime_bin: Path) -> None:
    ref = _reader_closes_early([str(wasmtime_bin), "run", str(BIGOUT), "4"], files)
    assert ref.status == 1 and b"write" in ref.stderr  # the guest saw its write fail
    run = _reader_closes_early(_rr_cmd("run", BIGOUT, "--", "4"), files)
    assert (run.status, run.stdout, run.stderr) == (ref.status, ref.stdout, ref.stderr)
    rec = _reader_closes_early(_rr_cmd("record", BIGOUT, "-t", "pipe.cbor", "--force", "--", "4"), files)
    assert rec.status == ref.status and rec.err.startswith(ref.err) and "Traceback" not in rec.err
    rep = _reader_closes_early(_rr_cmd("replay", BIGOUT, "pipe.cbor"), files)
    assert (rep.status, rep.stderr) == (ref.status, ref.stderr)


def test_own_output_pipe_closed_early(files: Path) -> None:
    # 3 MB of stdin makes `inspect --json` print megabytes: far more than a pipe holds.
    data = os.urandom(3 << 20)
    assert rr("record", BIGIN, "-t", "bigin.cbor", "--force", cwd=files, stdin=data).status == 0
    ran = _reader_closes_early(_rr_cmd("inspect", "bigin.cbor", "--json"), files)
    assert ran.status == EXIT_PIPE and ran.stdout == b"{"
    assert ran.stderr == b""  # neither a traceback nor "Exception ignored" at exit
