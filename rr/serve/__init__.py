"""`rr serve`: wasi:http/proxy handler components behind the embedded proxy, one instance
per request, recorded per request (server.py) and replayed per request (replay.py).

handler.py: one request through one instance (the server side of wasi:http is
rr/host/http/incoming.py); the trace's request blocks are rr/trace/served.py.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from typing import TYPE_CHECKING, Any

from .. import runner

if TYPE_CHECKING:
    from ..host.context import Sandbox
    from .server import ServeOptions

__all__ = ["ServeOptions", "load", "serve"]


def __getattr__(name: str) -> Any:
    # Not at import: `rr replay` imports rr.serve.cli to tell a server trace from a command's,
    # and a command's replay should not load the server (http.server, the incoming side).
    if name == "ServeOptions":
        from .server import ServeOptions
        return ServeOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str | os.PathLike[str], use_cache: bool = True) -> runner.Program:
    """A handler component, compiled (the fast byte path is for commands' stdio: not used)."""
    from .handler import check_handler
    return runner.load(path, use_cache=use_cache, fast_path=False, check=check_handler)


def serve(program: runner.Program, sandbox: Sandbox, options: ServeOptions,
          limits: runner.Limits | None = None, trace: str | None = None, fmt: str | None = None,
          overwrite: bool = False, redaction: Any = None) -> tuple[int, int]:
    """Serve until SIGINT/SIGTERM. Returns (requests served, requests recorded). `redaction`
    (a redact.Redaction; default: its default headers) applies to what the trace keeps."""
    import dataclasses

    from .. import redact, session
    from ..errors import UsageError
    from ..trace import TraceWriter
    from .server import Server, TraceSink
    from ..trace.served import HEADER_SERVE

    limits = limits or runner.Limits()
    if trace is None:
        return Server(program, sandbox, limits, options).serve(), 0
    try:
        rules = (redaction or redact.Redaction()).rules()
    except redact.BadRedaction as e:
        raise UsageError(str(e)) from None
    options = dataclasses.replace(options, redaction=rules)

    def recording(stack: contextlib.ExitStack) -> TraceSink:
        with session.trace_output_errors():
            writer = stack.enter_context(TraceWriter(trace, fmt, overwrite=overwrite))
        header = session.make_header(program, sandbox, limits, redact_rules=rules)
        header.extra[HEADER_SERVE] = {"addr": f"{options.host}:{options.port}"}
        writer.write_header(header)
        return TraceSink(writer, rules)

    server = Server(program, sandbox, limits, options, recording)
    served = server.serve()   # the trace has its end (Server.serve writes it once the stop is decided)
    return served, server.sink.requests if server.sink is not None else 0
