"""Driving the web UI of `rr record --inspect` through mitmweb's own HTTP API, as its pages do.

The URL rr prints carries the access token (`?token=...`); every API call sends it as a
Bearer header. Calls that change something (PUT, POST) also need tornado's XSRF token: the
UI reads it from the `_mitmproxy_xsrf` cookie that its `/updates` websocket handler sets
and echoes it in `X-XSRFToken`. (A plain GET of /updates is refused, 400, with the cookie set.)
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from http.cookies import SimpleCookie
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

XSRF_COOKIE = "_mitmproxy_xsrf"
URL_PREFIX = b"rr: inspect HTTP live at "
FINISHED_PREFIX = b"rr: the guest has finished"


class Lines:
    """A stream's lines as they come (a reader thread), kept whole for later checks too."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.seen: list[bytes] = []
        self._queue: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.seen.append(line)
            self._queue.put(line)

    def wait_for(self, prefix: bytes, timeout: float = 30) -> str:
        """The rest of the next line that starts with `prefix`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line[len(prefix):].decode().strip()
        raise AssertionError(f"no line starting {prefix!r} within {timeout} s; got {b''.join(self.seen)[-500:]!r}")

    def text(self) -> str:
        return b"".join(self.seen).decode(errors="replace")


def wait_for_web_url(lines: Lines, timeout: float = 30) -> str:
    """The URL `rr record --inspect` prints on stderr."""
    return lines.wait_for(URL_PREFIX, timeout)


def wait_until_recorded(lines: Lines, timeout: float = 90) -> None:
    """`rr record --inspect-wait` keeps the web UI up after the guest, until Ctrl-C: wait for
    its line saying the guest has finished (the trace is complete)."""
    lines.wait_for(FINISHED_PREFIX, timeout)


class WebUI:
    def __init__(self, url: str, timeout: float = 10) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = parse_qs(parts.query)["token"][0]
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.call("GET", "/updates", expect_error=True)   # sets the XSRF (and auth) cookies
        assert XSRF_COOKIE in self.cookies, f"mitmweb set no {XSRF_COOKIE} cookie: {self.cookies}"

    def call(self, method: str, path: str, body: Any = None, expect_error: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method not in ("GET", "HEAD"):
            headers["X-XSRFToken"] = self.cookies.get(XSRF_COOKIE, "")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    self.cookies[name] = morsel.value
        finally:
            conn.close()
        if response.status >= 400 and not expect_error:
            raise AssertionError(f"mitmweb {method} {path}: {response.status} {payload[:300]!r}")
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return json.loads(payload) if is_json and payload else payload

    def flows(self) -> list[dict[str, Any]]:
        return self.call("GET", "/flows")  # type: ignore[no-any-return]

    def set_intercept(self, flow_filter: str) -> None:
        self.call("PUT", "/options", {"intercept": flow_filter})

    def wait_for_intercepted(self, phase: str, timeout: float = 30) -> dict[str, Any]:
        """The first flow held by the intercept, in `phase` "request" (no response yet) or "response"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for flow in self.flows():
                if flow.get("intercepted") and (flow.get("response") is not None) == (phase == "response"):
                    return flow
            time.sleep(0.05)
        raise AssertionError(f"no flow was intercepted in its {phase} phase within {timeout} s")

    def modify(self, flow_id: str, changes: dict[str, Any]) -> None:
        self.call("PUT", f"/flows/{flow_id}", changes)

    def resume(self, flow_id: str) -> None:
        self.call("POST", f"/flows/{flow_id}/resume")
