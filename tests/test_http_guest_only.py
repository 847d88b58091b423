"""The embedded proxy serves the guest only: other local clients get a 407 and leave no trace.

During a real `rr record --inspect-wait` and a real `rr replay`, foreign clients (plain
http.client and a raw socket) talk to the rr process's proxy port: without credentials, with
wrong ones, with the guest's own flow id, and with CONNECT. None may reach the upstream
server, the trace, the web UI, or replay's matching; the guest's own run is unaffected.

The rr process is held alive while the foreign clients run: the guest prints a response
body larger than a pipe's buffer to a stdout the test reads only afterwards, so it blocks
in that write with its proxy up. The proxy's port is the one the process listens on
(from /proc), as any local process could find it.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import guests
from httpservers import TestServer, pattern_bytes
from rr.merge import flow_records
from mitmweb_api import Lines, WebUI, wait_for_web_url, wait_until_recorded

pytestmark = pytest.mark.timeout(180)

RR = [sys.executable, "-m", "rr"]
BODY_N = 1 << 20   # far more than a pipe holds: the guest blocks printing it


def _guest() -> str:
    path = guests.c_guest("http_get")
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return str(path)


def _listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on (IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:   # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _wait_for_ports(proc: subprocess.Popen[bytes], count: int, timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "rr ended before its proxy could be reached"
        ports = _listening_ports(proc.pid)
        if len(ports) >= count:
            return ports
        time.sleep(0.05)
    raise AssertionError(f"rr did not listen on {count} ports within {timeout} s")


def _foreign_http(port: int, url: str, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Proxy-Authenticate") or ""
    finally:
        conn.close()


def _foreign_connect(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        return s.recv(200).split(b"\r\n", 1)[0]


def _attack(port: int, server: TestServer) -> list[tuple[int, str]]:
    """Every kind of foreign request; returns their statuses and challenges."""
    wrong = "Basic " + base64.b64encode(b"rr:not-the-secret").decode()
    results = [
        _foreign_http(port, server.url("/plain?foreign=1"), {}),
        _foreign_http(port, server.url("/plain?foreign=2"), {"Proxy-Authorization": wrong}),
        # the guest's own flow id and URL: must not be taken for the guest's request
        _foreign_http(port, server.url(f"/bytes?n={BODY_N}"), {"x-rr-flow": "1"}),
    ]
    status_line = _foreign_connect(port, f"127.0.0.1:{server.port}")
    results.append((int(status_line.split()[1]), ""))
    return results


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*RR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=guests.REPO, env=guests._clean_env(None))


def test_foreign_clients_are_refused_while_recording_and_replaying(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with TestServer() as server:
        url = server.url(f"/bytes?n={BODY_N}")
        rec = _start(["record", "--allow-http", "127.0.0.1", "--inspect-wait", _guest(), "-t", str(trace), "--", url])
        assert rec.stderr is not None
        lines = Lines(rec.stderr)
        try:
            ui = WebUI(wait_for_web_url(lines))
            (proxy_port,) = _wait_for_ports(rec, 2) - {ui.port}
            recording_refusals = _attack(proxy_port, server)
            out: list[bytes] = []
            reader = threading.Thread(target=lambda: out.append(rec.stdout.read()), daemon=True)  # type: ignore[union-attr]
            reader.start()   # the guest can finish now
            wait_until_recorded(lines)
            shown = ui.flows()
            rec.send_signal(signal.SIGINT)   # --inspect-wait keeps the web UI up until Ctrl-C
            rec.wait(timeout=90)
            reader.join(timeout=30)
            recorded_out = out[0]
        finally:
            rec.kill()
            rec.wait(timeout=10)
        upstream = [(m, p) for m, p, _, _ in server.requests]

        rep = _start(["replay", _guest(), str(trace)])
        try:
            (replay_port,) = _wait_for_ports(rep, 1)
            replay_refusals = _attack(replay_port, server)
            replayed_out, replayed_err = rep.communicate(timeout=90)
        finally:
            rep.kill()
            rep.wait(timeout=10)
        upstream_after_replay = len(server.requests)

    challenge = 'Basic realm="rr"'
    assert recording_refusals == [(407, challenge)] * 3 + [(407, "")]
    assert replay_refusals == [(407, challenge)] * 3 + [(407, "")]
    # Only the guest's request went upstream, and nothing during replay.
    assert upstream == [("GET", f"/bytes?n={BODY_N}")]
    assert upstream_after_replay == 1
    # The web UI shows the guest's flow alone, without rr's own headers.
    assert [f["request"]["path"] for f in shown] == [f"/bytes?n={BODY_N}"]
    shown_headers = {n.lower() for n, _ in shown[0]["request"]["headers"]}
    assert not shown_headers & {"proxy-authorization", "x-rr-flow"}

    assert rec.returncode == 0, lines.text()
    assert recorded_out.startswith(b"status 200\n") and recorded_out.endswith(b"\n\n" + pattern_bytes(BODY_N))
    flows = flow_records(trace)
    assert [f["request"]["url"] for f in flows] == [url]
    recorded_headers = {bytes(n).lower() for n, _ in flows[0]["request"]["headers"]}
    assert not recorded_headers & {b"proxy-authorization", b"x-rr-flow"}

    # The replay was not disturbed: same output, exit 0, no divergence reported.
    assert rep.returncode == 0, replayed_err
    assert replayed_out == recorded_out
