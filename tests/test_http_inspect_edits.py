"""Edits made in the `--inspect` web UI while recording are what the guest gets, what is
recorded, and what replay reproduces.

A real `rr record --inspect-wait` of http_post against a real loopback server; the test drives
mitmweb's own HTTP API as its pages do (tests/mitmweb_api.py): it sets the intercept
filter, edits the held request (a header) and then the held response (status and
body), resuming each. The guest's output, the server's view, the trace, --dump, the HAR
and a replay must all show the edited exchange; replay must match the guest's request
against the one the guest sent, not the edited one.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import guests
from httpservers import TestServer
from rr.merge import flow_records
from mitmweb_api import Lines, WebUI, wait_for_web_url, wait_until_recorded

pytestmark = pytest.mark.timeout(180)

RR = [sys.executable, "-m", "rr"]
SENT = b"what the guest sent\n"
EDITED = "edited in the web UI\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _guest() -> str:
    path = guests.c_guest("http_post")
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return str(path)


def _header(headers: list[list[bytes]], name: bytes) -> list[bytes]:
    return [bytes(v) for n, v in headers if bytes(n).lower() == name]


def test_edits_in_the_web_ui_are_delivered_recorded_and_replayed(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with TestServer() as server:
        url = server.url("/echo")
        proc = subprocess.Popen(
            [*RR, "record", "--allow-http", "127.0.0.1", "--inspect-wait", "--inspect-port", str(_free_port()), "--dump",
             _guest(), "-t", str(trace), "--", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=guests.REPO, env=guests._clean_env(None))
        assert proc.stdin and proc.stdout and proc.stderr
        lines = Lines(proc.stderr)
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            ui = WebUI(wait_for_web_url(lines))
            # The guest sends nothing before its stdin ends: the filter is set in time.
            ui.set_intercept("~u /echo")
            proc.stdin.write(SENT)
            proc.stdin.close()

            held = ui.wait_for_intercepted("request")
            ui.modify(held["id"], {"request": {"headers": [*held["request"]["headers"], ["x-edited", "request"]]}})
            ui.resume(held["id"])

            held = ui.wait_for_intercepted("response")
            assert held["response"]["status_code"] == 200
            ui.modify(held["id"], {"response": {"code": 203, "content": EDITED}})
            ui.resume(held["id"])
            wait_until_recorded(lines)
            proc.send_signal(signal.SIGINT)   # --inspect-wait keeps the web UI up until Ctrl-C
            status = proc.wait(timeout=90)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        upstream = server.requests
    stderr = lines.text()
    stdout = out[0]

    # What the guest got: the edited response (its content-length follows the new body).
    assert status == 0, stderr
    assert stdout.startswith(b"status 203\n"), stdout
    assert stdout.endswith(b"\n\n" + EDITED.encode())
    assert f"header content-length: {len(EDITED)}\n".encode() in stdout
    # What went upstream: the guest's body with the edited header.
    assert [(m, p, b) for m, p, _, b in upstream] == [("POST", "/echo", SENT)]
    assert ("x-edited", "request") in [(n.lower(), v) for n, v in upstream[0][2]]

    # --dump shows the delivered response.
    assert re.search(rf"rr-proxy \[1\] POST {re.escape(url)} -> 203 {len(EDITED)}B", stderr), stderr

    # The trace holds the exchange as delivered, and the guest's own request apart.
    (record,) = flow_records(trace)
    assert record["response"]["status"] == 203
    assert record["response"]["body"] == EDITED.encode()
    assert _header(record["request"]["headers"], b"x-edited") == [b"request"]
    assert _header(record["guest_request"]["headers"], b"x-edited") == []

    har_path = tmp_path / "t.har"
    exported = subprocess.run([*RR, "har", str(trace), "-o", str(har_path)], capture_output=True, timeout=60,
                              cwd=guests.REPO, env=guests._clean_env(None))
    assert exported.returncode == 0, exported.stderr
    (entry,) = json.loads(har_path.read_text())["log"]["entries"]
    assert entry["response"]["status"] == 203 and entry["response"]["content"]["text"] == EDITED
    assert {"name": "x-edited", "value": "request"} in entry["request"]["headers"]

    # Replay (the server is gone) hands the guest the edited response, and the guest's
    # unedited request matches the recording.
    replayed = subprocess.run([*RR, "replay", _guest(), str(trace)], capture_output=True, timeout=60,
                              cwd=guests.REPO, env=guests._clean_env(None))
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == stdout
