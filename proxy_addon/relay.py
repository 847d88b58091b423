"""Raw TCP connections relayed through the proxy's SOCKS5 listeners, untouched but visible.

The embedded proxy gets SOCKS5 listeners besides its HTTP one, with `ignore_hosts=.*` and
`show_ignored_hosts` (set by rr.proxy): mitmproxy then relays every SOCKS5 connection's bytes as
they are (no HTTP or TLS parsing, which would hang on a line like `word something`) and still
makes a TCPFlow of it, so the connection shows in mitmweb and in flow dumps.

This addon
- admits only the connections its owner announced: the listeners are on loopback, where any local
  process could reach them, and SOCKS5's own user/password scheme would have to be switched on
  through the `proxyauth` option, which mitmweb's proxyauth addon would then also apply to the
  HTTP listener. A client announces the local address it will connect from (`expect`) before it
  connects; anything else is cut off at `client_connected`;
- tells the client what mitmproxy's upstream connection was: its local address (what a direct
  connection's getsockname() would have said) or why it failed (SOCKS5 only says "host unreachable"
  for every failure), through `outcome`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mitmproxy import connection

logger = logging.getLogger(__name__)

Address = tuple[str, int]


def _key(address: Any) -> Address:
    return (str(address[0]), int(address[1]))


class RawRelay:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._expected: set[Address] = set()
        self._outcomes: dict[Address, tuple | str] = {}   # client address -> upstream sockname (as the OS gives it) or error
        self.refused = 0

    # ---- the client side (any thread) -------------------------------------------------------

    def expect(self, client_address: Any) -> None:
        """The next connection from `client_address` (host, port) is rr's own."""
        with self._lock:
            self._expected.add(_key(client_address))

    def outcome(self, client_address: Any, timeout: float) -> tuple | str | None:
        """The upstream connection's local address, or the error that ended it, once mitmproxy
        knows; None if it did not within `timeout` seconds. Forgets the client afterwards."""
        key = _key(client_address)
        with self._lock:
            self._lock.wait_for(lambda: key in self._outcomes, timeout)
            self._expected.discard(key)
            return self._outcomes.pop(key, None)

    def forget(self, client_address: Any) -> None:
        with self._lock:
            self._expected.discard(_key(client_address))
            self._outcomes.pop(_key(client_address), None)

    # ---- mitmproxy hooks (the proxy's loop thread) ------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        if getattr(client.proxy_mode, "type_name", None) != "socks5":
            return
        with self._lock:
            if _key(client.peername) in self._expected:
                return
        self.refused += 1
        logger.warning("rr: refused a SOCKS5 connection from %s that is not the guest's", client.peername)
        client.error = "rr: this proxy serves the guest of one rr run only"

    def server_connected(self, data: Any) -> None:
        self._note(data.client, tuple(data.server.sockname))

    def server_connect_error(self, data: Any) -> None:
        self._note(data.client, str(data.server.error or "connection failed"))

    def _note(self, client: connection.Client, outcome: tuple | str) -> None:
        if getattr(client.proxy_mode, "type_name", None) != "socks5":
            return
        key = _key(client.peername)
        with self._lock:
            if key in self._expected:
                self._outcomes[key] = outcome
                self._lock.notify_all()
