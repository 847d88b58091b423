"""The `rr serve` command and the server-trace branch of `rr replay` (rr/cli.py stays thin)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable

from ..errors import UsageError


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"serve: --addr {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


def serve_command(args: argparse.Namespace, report: Callable[[str], None]) -> int:
    from . import ServeOptions, load, serve
    from .. import redact, runner
    from ..sandbox_args import sandbox_from_args

    if args.timeout is not None:
        raise UsageError("serve: --timeout is not supported by rr serve (it limits whole runs)")
    if args.max_instance_reuse_count < 1:
        raise UsageError("serve: --max-instance-reuse-count must be at least 1")
    if args.trace and args.max_instance_reuse_count > 1:
        raise UsageError("serve: -t records one instance per request: --max-instance-reuse-count "
                         "cannot be given with it")
    if not (args.inspect) and (args.inspect_host or args.inspect_port):
        raise UsageError("serve: --inspect-host and --inspect-port need --inspect")
    host, port = parse_addr(args.addr)
    if args.trace and os.path.exists(args.trace) and os.path.samefile(args.trace, args.component):
        raise UsageError(f"-t {args.trace}: that is the component itself (--force would replace it)")
    program = load(args.component, use_cache=not args.no_cache)
    sandbox = sandbox_from_args(args, program.path.name, [])
    recording = f", recording to {args.trace}" if args.trace else ""
    options = ServeOptions(
        host=host, port=port, max_instance_reuse=args.max_instance_reuse_count, dump=args.dump,
        inspect=args.inspect, inspect_host=args.inspect_host or "127.0.0.1", inspect_port=args.inspect_port,
        verbose=args.verbose,
        on_listening=lambda url: report(f"serving {program.path.name} on {url}{recording} (Ctrl-C stops)"),
        on_web_url=lambda url: report(f"inspect HTTP live at {url}"))
    fmt = {"json": "jsonl"}.get(args.format, args.format)
    served, recorded = serve(program, sandbox, options, runner.Limits(args.max_memory, None),
                             trace=args.trace, fmt=fmt, overwrite=args.force, redaction=redact.from_args(args))
    report(f"served {served} requests" + (f"; recorded {recorded} to {args.trace}" if args.trace else ""))
    return 0


def replay_if_server_trace(args: argparse.Namespace, report: Callable[[str], None]) -> int | None:
    """The status of replaying a server trace, or None if `args.trace` is not one."""
    from ..errors import ComponentError
    from ..trace import TraceError, open_trace
    from ..trace.served import is_server_trace
    from . import load

    try:
        regular = stat.S_ISREG(os.stat(args.trace).st_mode)
    except OSError:
        return None   # the command replay says what is wrong with it
    known = False   # the trace itself says it is a server trace
    if regular:
        try:
            with open_trace(args.trace) as reader:
                if not is_server_trace(reader.header):
                    return None
            known = True
        except OSError:
            return None
        except TraceError:
            pass   # unreadable: the component decides which replay says so
    # A pipe (`<(cat serve.cbor)`) can be read only once, so it is not looked into first: the
    # trace of a handler component is a server trace (rr record refuses such a component).
    try:
        program = load(args.component, use_cache=not args.no_cache)
    except ComponentError:
        if known:
            raise
        return None   # not a handler: a command's trace, replayed (or refused) as one
    from .replay import replay_server_trace   # here: a command's replay must not import the server side
    return replay_server_trace(program, args.trace, sys.stdout.buffer, sys.stderr.buffer,
                               args.request, args.until, report)


def refusal(args: argparse.Namespace, error: Exception) -> Exception:
    """Why a command's replay cannot load the component: a handler component's trace that is
    not a server trace is a bad trace (a handler records only server traces), else `error`."""
    from ..errors import ComponentError
    from . import load
    from .replay import not_a_server_trace

    from ..session import BadTrace
    from ..trace import TraceError, open_trace

    try:
        program = load(args.component, use_cache=not args.no_cache)
    except ComponentError:
        return error
    try:
        with open_trace(args.trace):
            pass
    except TraceError as e:   # missing, unreadable: the trace's own problem first
        return BadTrace(str(e))
    return not_a_server_trace(args.trace, program)
