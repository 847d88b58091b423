"""`rr record --inspect`: mitmproxy's web UI stays up after the guest until Ctrl-C when stderr is
a terminal (always with --inspect-wait, which SIGTERM ends too), shows the address the embedded
proxy really listens on, and a port in use is a usage error."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import guests
from httpservers import PLAIN_BODY, TestServer

pytestmark = pytest.mark.timeout(120)

RR = [sys.executable, "-m", "rr"]
LIVE = "rr: inspect HTTP live at "
STAYS_UP = "rr: the guest has finished and "


@pytest.fixture(scope="module")
def proxy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("xdg-cache"))}


class Recording:
    """`rr record` running as a real process; its stderr (a pipe, or a pseudo-terminal when
    `tty`) read line by line."""

    def __init__(self, args: list[str], env: dict[str, str], tty: bool = False):
        self._tty = None
        stderr: int = subprocess.PIPE
        if tty:
            self._tty, stderr = os.openpty()
        self.proc = subprocess.Popen([*RR, "record", *args], stdout=subprocess.PIPE, stderr=stderr,
                                     cwd=guests.REPO, env=guests._clean_env(env))
        if self._tty is not None:
            os.close(stderr)   # the child holds the terminal's other end
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        if self._tty is None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.put(line.decode())
            return
        with open(self._tty, "rb", buffering=0) as terminal:
            pending = b""
            while True:
                try:
                    chunk = terminal.read(4096)
                except OSError:   # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                pending += chunk
                *whole, pending = pending.split(b"\n")
                for line in whole:
                    self.lines.put(line.rstrip(b"\r").decode() + "\n")

    def wait_for(self, prefix: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.err.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} on stderr: {self.err}")

    def api(self, web_url: str, path: str) -> Any:
        token = parse_qs(urlsplit(web_url).query)["token"][0]
        request = urllib.request.Request(web_url.split("?")[0] + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def finish(self) -> tuple[int, str, str]:
        out = self.proc.stdout.read().decode() if self.proc.stdout else ""
        status = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)   # stderr is at its end once the process is gone
        while not self.lines.empty():
            self.err.append(self.lines.get_nowait())
        return status, out, "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.mark.parametrize("flag,tty,how", [("--inspect", True, signal.SIGINT),
                                          ("--inspect-wait", False, signal.SIGINT),
                                          ("--inspect-wait", False, signal.SIGTERM)],
                         ids=["terminal-ctrl-c", "wait-ctrl-c", "wait-sigterm"])
def test_the_web_ui_stays_up_after_the_guest_until_told_to_stop(flag: str, tty: bool, how: signal.Signals,
                                                                 tmp_path: Path, proxy_env: dict[str, str]) -> None:
    trace = tmp_path / "t.cbor"
    with TestServer() as server:
        url = server.url("/plain")
        rec = Recording([flag, "--allow-http", "127.0.0.1", str(guests.c_guest("http_get")),
                         "-t", str(trace), "--", url], proxy_env, tty=tty)
        try:
            web_url = rec.wait_for(LIVE)[len(LIVE):].strip()
            stays = rec.wait_for(STAYS_UP)
            assert f"{trace} is complete" in stays and web_url in stays and "until Ctrl-C" in stays
            assert rec.proc.poll() is None   # the guest is done; rr is not
            # The UI still answers, with the flow the guest made.
            flows = rec.api(web_url, "flows")
            assert [(f["request"]["method"], f["request"]["path"]) for f in flows] == [("GET", "/plain")]
            # It shows the proxy's real address: the one it listens on, not 8080 or port 0.
            (server_state,) = rec.api(web_url, "state")["servers"].values()
            ((host, port),) = server_state["listen_addrs"]
            options = rec.api(web_url, "options")
            assert (host, server_state["is_running"]) == ("127.0.0.1", True) and port > 0
            assert options["mode"]["value"] == [f"regular@127.0.0.1:{port}"]
            assert options["listen_port"]["value"] == port
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass   # really listening there
            rec.proc.send_signal(how)
            status, out, err = rec.finish()
        finally:
            rec.kill()
    assert status == 0, err                       # the guest's status, not 130/143
    assert out.startswith("status 200\n") and out.endswith("\n\n" + PLAIN_BODY.decode())
    assert "Traceback" not in err and "rr: recorded " in err, err
    inspected = subprocess.run([*RR, "inspect", str(trace), "--no-events"], capture_output=True, text=True,
                               timeout=60, cwd=guests.REPO)
    assert "outcome    exit status 0\n" in inspected.stdout, inspected.stdout + inspected.stderr


def test_without_a_terminal_the_web_ui_closes_with_the_guest(tmp_path: Path, proxy_env: dict[str, str]) -> None:
    with TestServer() as server:
        done = subprocess.run([*RR, "record", "--inspect", "--allow-http", "127.0.0.1", str(guests.c_guest("http_get")),
                               "-t", str(tmp_path / "t.cbor"), "--", server.url("/plain")],
                              capture_output=True, text=True, timeout=60, cwd=guests.REPO,
                              env=guests._clean_env(proxy_env))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(LIVE)
    assert lines[1] == ("rr: the guest has finished; the web UI closes with the recording "
                        "(stderr is not a terminal: --inspect-wait keeps it up)")
    assert lines[2].startswith("rr: recorded ")


def test_a_web_ui_port_in_use_is_one_line_and_keeps_the_trace(tmp_path: Path, proxy_env: dict[str, str]) -> None:
    trace = tmp_path / "t.cbor"
    trace.write_bytes(b"an earlier recording")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*RR, "record", "--inspect", "--inspect-port", str(port), "--force",
                               str(guests.c_guest("http_get")), "-t", str(trace), "--", "http://127.0.0.1:1/"],
                              capture_output=True, text=True, timeout=60, cwd=guests.REPO,
                              env=guests._clean_env(proxy_env))
    assert done.returncode == 125, done.stderr
    assert done.stderr == f"rr: --inspect: web UI cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert trace.read_bytes() == b"an earlier recording"


def test_inspect_on_a_guest_without_http_says_so_and_does_not_wait(tmp_path: Path) -> None:
    done = subprocess.run([*RR, "record", "--inspect", str(guests.c_guest("random")), "-t", str(tmp_path / "t.cbor")],
                          capture_output=True, text=True, timeout=60, cwd=guests.REPO, env=guests._clean_env(None))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("rr: note: --inspect: random.wasm does not import wasi:http, so there is no web UI\n")
