"""rr/proxyhooks.py: mitmproxy's hooks run in line keep mitmproxy's own rules.

A real mitmproxy master (the addons rr's proxy runs, plus a few of the test's) on a loop of
its own, and a real request through it from http.client. Each rule is one the in-line path
re-implements: chain order, an addon error logged while the next addon still runs, an async
handler waited for before the next one, AddonHalt ending a hook's chain, the update hook.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from pathlib import Path
from typing import Any

from rr import proxy as rrproxy


def test_hooks_in_line_keep_chain_order_errors_awaits_and_halts(tmp_path: Path) -> None:
    rrproxy._lean_imports()
    rrproxy._loop_local_ctx()
    from mitmproxy import exceptions, options
    from mitmproxy import http as mhttp
    from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
    from mitmproxy.master import Master

    from rr import proxyhooks

    calls: list[str] = []

    class Failing:
        def request(self, flow: Any) -> None:
            calls.append("failing.request")
            raise ValueError("an addon's bug")

    class Waiting:
        async def request(self, flow: Any) -> None:
            await asyncio.sleep(0.01)
            calls.append("waiting.request")
            flow.metadata["waited"] = True

    class Answering:
        def request(self, flow: Any) -> None:
            calls.append(f"answering.request waited={flow.metadata.get('waited')}")
            flow.response = mhttp.Response.make(200, b"answered in the request hook\n")

        def update(self, flows: list) -> None:
            calls.append("answering.update")

    class Halting:
        def response(self, flow: Any) -> None:
            calls.append("halting.response")
            raise exceptions.AddonHalt()

    class AfterHalt:
        def response(self, flow: Any) -> None:
            calls.append("after-halt.response")

        def request(self, flow: Any) -> None:
            calls.append("after-halt.request")

    ready = threading.Event()
    box: dict[str, Any] = {}

    class Ready:
        def running(self) -> None:
            ready.set()

    async def serve() -> None:
        proxyhooks.install()
        opts = options.Options()
        master = Master(opts, with_termlog=False)
        master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),
                          Failing(), Waiting(), Answering(), Halting(), AfterHalt(), Ready())
        opts.update(listen_host="127.0.0.1", listen_port=0, confdir=str(tmp_path), connection_strategy="lazy")
        box["master"] = master
        await master.run()
        await master.addons.get("proxyserver").servers.update([])

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        master = box["master"]
        port = next(iter(master.addons.get("proxyserver").servers)).listen_addrs[0][1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "http://upstream.invalid/p")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"answered in the request hook\n")
        conn.close()
    finally:
        if "master" in box:
            box["master"].shutdown()
        thread.join(10)
    requests = [c for c in calls if c.endswith(".request") or "request " in c]
    # the failing addon did not stop the chain; the answering one ran after the async one ended
    assert requests == ["failing.request", "waiting.request", "answering.request waited=True",
                        "after-halt.request"]
    # AddonHalt ended the response hook's chain; a flow's hooks are followed by update hooks
    assert "halting.response" in calls and "after-halt.response" not in calls
    assert calls.count("answering.update") >= 3
    from mitmproxy.proxy import server
    assert getattr(server.ConnectionHandler.server_event, "rr_inline", False)   # the in-line path ran
