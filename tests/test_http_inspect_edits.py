"""Edits made in the `--inspect` web UI while recording are what the guest gets, what is
recorded, and what replay reproduces.

A real `rr record --inspect` of http_post against a real loopback server; the test drives
mitmweb's own HTTP API as its pages do (tests/mitmweb_api.py): it sets the intercept
filter, edits the held request (a header) and then the held response (status and
body), resuming each. The guest's output, the server's view, the trace, --dump, the HAR
and a replay must all show the edited exchange; replay must match the guest's request
against the one the guest sent, not the edited one.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import guests
from httpservers import TestServer
from mitmweb_api import WebUI, lines_to_queue, wait_for_web_url

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


def _header(headers: list[list], name: str) -> list:
    return [v for n, v in headers if n.lower() == name]


def test_edits_in_the_web_ui_are_delivered_recorded_and_replayed(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with TestServer() as server:
        url = server.url("/echo")
        proc = subprocess.Popen(
            [*RR, "record", "--allow-http", "127.0.0.1", "--inspect", "--inspect-port", str(_free_port()), "--dump",
             _guest(), "-t", str(trace), "--", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=guests.REPO, env=guests._clean_env(None))
        assert proc.stdin and proc.stdout and proc.stderr
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lines_to_queue, args=(proc.stderr, lines), daemon=True).start()
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
            status = proc.wait(timeout=90)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        upstream = server.requests
    stderr = _drain(lines).decode()
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
    (event,) = [json.loads(line) for line in trace.read_text().splitlines()
                if '"wasi:http/outgoing-handler.handle"' in line]
    record = event["result"]
    assert record["response"]["status"] == 203
    assert _bytes(record["response"]["body"]) == EDITED.encode()
    upstream_headers = [[_bytes(n), _bytes(v)] for n, v in record["request"]["headers"]]
    guest_headers = [[_bytes(n), _bytes(v)] for n, v in record["guest_request"]["headers"]]
    assert _header(upstream_headers, b"x-edited") == [b"request"]
    assert _header(guest_headers, b"x-edited") == []

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


def _bytes(value: dict[str, str]) -> bytes:
    return base64.b64decode(value["$bytes"])


def _drain(lines: "queue.Queue[bytes]") -> bytes:
    got = []
    while not lines.empty():
        got.append(lines.get_nowait())
    return b"".join(got)
