"""compose.yaml: valid Compose, internally consistent, and its demo works outside containers.

There is no Docker engine here, so `docker compose up` cannot run. Instead: the file is
checked with `compose-spec` (PyPI; bindings of the Rust compose_spec parser, which rejects
unknown keys and malformed values), its cross-references are checked against the repo, and
both services' commands are run on loopback with the container paths mapped to the repo.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from rr.har import export_har

REPO = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (REPO / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = YAML(typ="safe").load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
RR_CMD: list[str] = SERVICES["rr"]["command"]


def option(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, f"{name}=... expected once in {argv}"
    return values[0]


def guest_url() -> str:
    return RR_CMD[RR_CMD.index("--") + 1]


def container_paths(service: dict[str, Any], volume_root: Path) -> dict[str, Path]:
    """Container path -> host path: bind mounts from the repo, named volumes under volume_root."""
    paths = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        paths[target] = REPO / source if source.startswith(".") else volume_root / source
    return paths


def localize(argv: list[str], paths: dict[str, Path]) -> list[str]:
    out = []
    for arg in argv:
        for target, host in paths.items():
            arg = re.sub(rf"(^|=){re.escape(target)}(?=/|$)", lambda m: m.group(1) + str(host), arg)
        out.append(arg)
    return out


def test_compose_file_is_valid_compose() -> None:
    compose_spec = pytest.importorskip(
        "compose_spec", reason="compose-spec not installed (pip install compose-spec==0.2.1; in the test extras)")
    parsed = compose_spec.PyCompose.from_yaml(COMPOSE_TEXT)
    assert parsed.validate() is None
    assert sorted(parsed.service_names()) == ["demo", "rr"]


@pytest.mark.parametrize("old,new,complaint", [
    ("    stop_signal:", "    stop_signall:", "stop_signall"),
    ('"127.0.0.1:8081:8081"', '"127.0.0.1:80x:8081"', "ports"),
    ("interval: 2s", "interval: 2 fortnights", "duration"),
])
def test_the_validator_rejects_broken_variants_of_the_file(old: str, new: str, complaint: str) -> None:
    compose_spec = pytest.importorskip("compose_spec", reason="compose-spec not installed")
    assert old in COMPOSE_TEXT
    with pytest.raises(ValueError, match=complaint):
        compose_spec.PyCompose.from_yaml(COMPOSE_TEXT.replace(old, new, 1)).validate()


def test_services_refer_to_what_exists() -> None:
    rr, demo = SERVICES["rr"], SERVICES["demo"]
    assert rr["image"] == demo["image"] == "python:3.12-slim"
    assert set(rr["depends_on"]) <= set(SERVICES)
    named = [v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", []) if not v.startswith(".")]
    assert set(named) <= set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for target, host in container_paths(service, Path("/nonexistent")).items():
            assert host.exists() or host.parent == Path("/nonexistent"), (target, host)
    # The guest and the file it fetches exist; the URL names the demo service and its port.
    guest = localize([RR_CMD[RR_CMD.index("--") - 1]], container_paths(rr, Path("/unused")))[0]
    assert Path(guest) == REPO / "tests/guests/bin/http_get.wasm" and Path(guest).is_file()
    url = urlsplit(guest_url())
    assert url.hostname == "demo" and str(url.port) in demo["command"]
    site = container_paths(demo, Path("/unused"))[demo["command"][demo["command"].index("--directory") + 1]]
    assert (site / url.path.lstrip("/")).is_file()
    assert "/hello.txt" in demo["healthcheck"]["test"][-1]
    # The web UI: every interface inside the container, published on the host's loopback only.
    assert option(RR_CMD, "--inspect-host") == "0.0.0.0"
    assert rr["ports"] == [f"127.0.0.1:{option(RR_CMD, '--inspect-port')}:{option(RR_CMD, '--inspect-port')}"]
    # The entrypoint copies only top-level entries that exist, then runs the command.
    script = rr["entrypoint"][2]
    copied = re.search(r"cp -r (.*) /tmp/rr-src/", script)
    assert copied is not None
    assert all((REPO / Path(p).relative_to("/src")).exists() for p in copied.group(1).split())
    assert script.rstrip().endswith('exec "$$@"')  # `$$` is compose's escape for `$`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the demo upstream exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the demo upstream did not listen on {port} within {timeout} s")


def test_the_demo_records_outside_containers(tmp_path: Path) -> None:
    """Both services' own commands, on 127.0.0.1 with the repo in place of the mounts; the
    recording then exports to a HAR holding the demo's file. (--inspect* are left out: the
    web UI is not what this checks.)"""
    demo = SERVICES["demo"]
    port = _free_port()
    demo_argv = [sys.executable if a == "python" else str(port) if a == "8000" else a for a in demo["command"]]
    demo_argv = localize([a.replace("0.0.0.0", "127.0.0.1") for a in demo_argv], container_paths(demo, tmp_path))
    upstream = subprocess.Popen(demo_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, upstream)
        rr_argv = [str(Path(sys.executable).parent / "rr") if a == "rr" else a
                   for a in RR_CMD if not a.startswith("--inspect")]
        # The grant names the demo service as the URL does: both move to the local upstream.
        rr_argv = localize([a.replace("http://demo:8000/", f"http://127.0.0.1:{port}/")
                            .replace("--allow-http=demo:8000", f"--allow-http=127.0.0.1:{port}") for a in rr_argv],
                           container_paths(SERVICES["rr"], tmp_path))
        (tmp_path / "traces").mkdir()
        done = subprocess.run(rr_argv, capture_output=True, timeout=120, cwd=tmp_path)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    assert done.returncode == 0, done.stderr.decode()
    body = (REPO / "tests/compose/site/hello.txt").read_bytes()
    assert done.stdout.startswith(b"status 200\n") and done.stdout.endswith(b"\n\n" + body)

    trace = tmp_path / "traces" / Path(option(RR_CMD, "--trace")).name
    exported = export_har(trace, tmp_path / "demo.har")
    assert exported.flows == 1
    entry = json.loads((tmp_path / "demo.har").read_text())["log"]["entries"][0]
    assert entry["request"]["url"] == f"http://127.0.0.1:{port}{urlsplit(guest_url()).path}"
    assert entry["response"]["content"]["text"] == body.decode()
