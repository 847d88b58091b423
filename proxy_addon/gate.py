"""The proxy serves rr's host only: every request must carry the run's secret.

The embedded proxy listens on loopback, where any local process could reach it: through a
recording proxy it would be forwarded upstream and written into the trace, through a
replay proxy it would be matched against the recording and fail the replay. So the host
sends `Proxy-Authorization: Basic base64("rr:<secret>")` (a fresh secret per run) and this
addon, first in mitmproxy's addon chain, checks and strips it on the request's first hook,
before any other addon (the recorder, the replayer, the web UI's view and intercept) sees
the flow. A request without it gets a 407 and, from then on, no other addon hears of it:
every later hook of that flow stops here.

It also takes the host's `x-rr-flow` id off the request into the flow's metadata, so the
id is never forwarded, shown as a header, or compared.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from typing import Final

from mitmproxy import exceptions, http
from mitmproxy.proxy.mode_specs import ReverseMode

from .errors import HEADER_FLOW
from .flowrecord import META_FLOW_ID, META_INCOMING

logger = logging.getLogger(__name__)

AUTH_HEADER: Final = "proxy-authorization"
USER: Final = "rr"
_REFUSED: Final = "rr.refused"


def new_credentials() -> str:
    """A fresh Proxy-Authorization value for one run."""
    token = secrets.token_urlsafe(32)
    return "Basic " + base64.b64encode(f"{USER}:{token}".encode()).decode()


def refusal() -> http.Response:
    return http.Response.make(
        407, "rr: this proxy serves the guest of one rr run only\n",
        {"Proxy-Authenticate": 'Basic realm="rr"', "Content-Type": "text/plain; charset=utf-8",
         "Connection": "close"},
    )


class GuestGate:
    """Admits only requests that carry `credentials` (a Proxy-Authorization value)."""

    def __init__(self, credentials: str) -> None:
        self._credentials = credentials.encode()
        self.refused = 0   # requests turned away (read from another thread: a plain int is enough)

    def _admit(self, flow: http.HTTPFlow) -> None:
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            # A client of `rr serve` (its reverse listener is public by design): what it sends
            # goes to rr's own backend, never upstream, and is recorded by rr serve itself.
            flow.metadata[META_INCOMING] = True
            return
        given = flow.request.headers.get_all(AUTH_HEADER)
        flow.request.headers.pop(AUTH_HEADER, None)
        if len(given) == 1 and hmac.compare_digest(given[0].encode("latin-1", "replace"), self._credentials):
            flow_id = flow.request.headers.pop(HEADER_FLOW, None)
            if flow_id is not None:
                flow.metadata[META_FLOW_ID] = flow_id
            return
        flow.metadata[_REFUSED] = True
        flow.response = refusal()
        self.refused += 1
        logger.warning("rr: refused a request from %s that is not the guest's: %s %s",
                       flow.client_conn.peername, flow.request.method, flow.request.pretty_url)
        raise exceptions.AddonHalt()

    @staticmethod
    def _halt_if_refused(flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_REFUSED):
            raise exceptions.AddonHalt()

    # The first hook of a proxied request, and of a CONNECT.
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._admit(flow)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._admit(flow)

    # Every later hook of a refused flow ends here.
    def request(self, flow: http.HTTPFlow) -> None:
        self._halt_if_refused(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._halt_if_refused(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._halt_if_refused(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._halt_if_refused(flow)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._halt_if_refused(flow)

    def update(self, flows: list) -> None:
        if flows and all(getattr(f, "metadata", {}).get(_REFUSED) for f in flows):
            raise exceptions.AddonHalt()
