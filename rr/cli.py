"""rr's command line: parse, call the library, map failures to one line and a status."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from . import __version__, signals
from .errors import (EXIT_BAD_TRACE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_PIPE, EXIT_STATUSES,
                     EXIT_USAGE, ComponentError, RRError, UsageError)
from .sandbox_args import add_sandbox_flags, refuse_on_replay


def exit_status_epilog() -> str:
    """EXIT_STATUSES as the `--help` epilog of rr and of every command."""
    import textwrap

    width = max(len(status) for status, _ in EXIT_STATUSES)
    lines = ["exit status:"]
    for status, meaning in EXIT_STATUSES:
        lines += textwrap.wrap(meaning, 79, initial_indent=f"  {status:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    return "\n".join(lines) + "\n"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse makes a formatter for every add_argument (to check metavars), and its default
    width imports shutil for the terminal size; only help needs the width, so ask then."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None):
        self._help_position = None if width is not None else max_help_position
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)

    def format_help(self) -> str:
        if self._help_position is not None:  # as argparse sizes itself when given no width
            import shutil
            self._width = shutil.get_terminal_size().columns - 2
            self._max_help_position = min(self._help_position, max(self._width - 20, self._indent_increment * 2))
        return super().format_help()


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line `rr: <command>: <message> (see rr <command> --help)`
    with the usage status, instead of two lines of usage and status 2."""

    def __init__(self, *args, formatter_class: type[argparse.HelpFormatter] = _Formatter, **kwargs):  # type: ignore[no-untyped-def]
        # From the start, not set afterwards: every add_argument makes a formatter (see _Formatter).
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):  # type: ignore[no-untyped-def]
        raise UsageError(_usage_message(self.prog, message))

    def format_help(self) -> str:
        self.epilog = exit_status_epilog()  # made when shown: textwrap is start-up time otherwise
        return super().format_help()


def _usage_message(prog: str, message: str) -> str:
    command = prog.partition(" ")[2]
    return f"{command + ': ' if command else ''}{message} (see {prog} --help)"


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a count (0, 1, 2, ...), got {text!r}")
    return n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535, got {text!r}")
    return n


def _pem_file(text: str) -> Path:
    """A CA file that exists and is PEM: checked now, not when the first HTTPS request needs it."""
    path = Path(text)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text}: no such file") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {e.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise argparse.ArgumentTypeError(f"{text}: not a PEM certificate (no BEGIN CERTIFICATE line)")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rr", description="Record and replay WASI 0.2 command components.",
                allow_abbrev=False)
    p.add_argument("--version", action="version", version=f"rr {__version__}")
    # prog given: argparse would format a usage line to find "rr" (and ask the terminal's width)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", prog="rr")  # a missing one is checked in _parse

    run = sub.add_parser("run", help="run a component in the sandbox (nothing recorded)")
    _add_component(run)
    add_sandbox_flags(run)
    _add_common(run)
    run.set_defaults(handler=_cmd_run)

    rec = sub.add_parser("record", help="run a component and record everything nondeterministic it receives")
    _add_component(rec)
    rec.add_argument("-t", "--trace", default="rr-trace.cbor", metavar="TRACE",
                     help="where to write the trace (default: rr-trace.cbor)")
    rec.add_argument("-f", "--format", choices=["cbor", "json"],
                     help="trace encoding (default: from the extension; .gz compresses)")
    rec.add_argument("--force", action="store_true", help="replace an existing trace file")
    rec.add_argument("--record-output", action="store_true",
                     help="record the bytes the guest writes to stdout and stderr, not only their digests "
                          "(a replay that differs then shows the exact offset and the bytes on both sides)")
    web = rec.add_argument_group("HTTP (through the embedded mitmproxy)")
    web.add_argument("--ca-cert", metavar="PEM", type=_pem_file,
                     help="also trust this CA for upstream TLS (default: the system trust store)")
    web.add_argument("--inspect", action="store_true",
                     help="serve mitmproxy's web UI while recording (its URL with the access token goes to "
                          "stderr); when stderr is a terminal it stays up after the guest, until Ctrl-C")
    web.add_argument("--inspect-host", metavar="ADDR",
                     help="address the web UI listens on (default 127.0.0.1)")
    web.add_argument("--inspect-port", type=_port, metavar="PORT", help="port of the web UI (default: a free one)")
    web.add_argument("--inspect-wait", action="store_true",
                     help="as --inspect, and keep the web UI up after the guest until Ctrl-C or SIGTERM "
                          "even when stderr is not a terminal (containers, scripts)")
    web.add_argument("--dump", action="store_true", help="print one line per HTTP exchange on stderr")
    from . import redact
    redact.add_flags(rec)
    add_sandbox_flags(rec)
    _add_common(rec)
    rec.set_defaults(handler=_cmd_record)

    ver = sub.add_parser("verify", help="record a run, replay it N times, and say whether every replay matched")
    _add_component(ver)
    ver.add_argument("-t", "--trace", metavar="TRACE",
                     help="keep the recording here (default: a temporary trace, kept only if a replay differs)")
    ver.add_argument("--replays", type=_count, default=2, metavar="N", help="how many replays (default 2)")
    ver.add_argument("-f", "--format", choices=["cbor", "json"], help="trace encoding (default: from the extension)")
    ver.add_argument("--force", action="store_true", help="replace an existing trace file")
    ver.add_argument("--record-output", action="store_true",
                     help="record stdout and stderr bytes, so a differing replay shows the exact offset")
    ver.add_argument("--ca-cert", metavar="PEM", type=_pem_file, help="also trust this CA for upstream TLS")
    redact.add_flags(ver)
    add_sandbox_flags(ver)
    _add_common(ver)
    ver.set_defaults(handler=_cmd_verify)

    rep = sub.add_parser("replay", help="re-run a component from its trace alone")
    rep.add_argument("component", help="the .wasm command component that was recorded")
    rep.add_argument("trace", nargs="?", default="rr-trace.cbor", help="the trace (default: rr-trace.cbor)")
    rep.add_argument("--until", type=_count, metavar="N",
                     help="stop cleanly before event N (of a server trace: of the request --request names)")
    rep.add_argument("--request", type=_count, metavar="N", help="a server trace (rr serve -t): replay request N only")
    rep.add_argument("--component-changed", action="store_true",
                     help="regression replay: COMPONENT is another build than the recorded one; serve the "
                          "recorded inputs while it asks for the same things and report where it departs "
                          "(exit 0: ran as recorded, 121: departed)")
    rep.add_argument("--no-output-check", action="store_true",
                     help="do not compare the guest's stdout and stderr with the recorded ones (to see what a "
                          "hand-edited trace does)")
    # Replay applies the limits the trace records; a flag could only contradict them.
    for flag in ("--timeout", "--max-memory"):
        rep.add_argument(flag, type=refuse_on_replay(flag), help=argparse.SUPPRESS)
    _add_common(rep)
    rep.set_defaults(handler=_cmd_replay)

    srv = sub.add_parser("serve", help="serve a wasi:http/proxy handler component (and record its requests with -t)")
    srv.add_argument("component", help="the .wasm component exporting wasi:http/incoming-handler")
    srv.add_argument("--addr", default="127.0.0.1:8080", metavar="HOST:PORT",
                     help="where clients connect (default 127.0.0.1:8080)")
    srv.add_argument("-t", "--trace", metavar="TRACE", help="record every request into this trace")
    srv.add_argument("-f", "--format", choices=["cbor", "json"],
                     help="trace encoding (default: from the extension; .gz compresses)")
    srv.add_argument("--force", action="store_true", help="replace an existing trace file")
    srv.add_argument("--max-instance-reuse-count", type=_count, default=1, metavar="N",
                     help="serve up to N requests in sequence with one instance (default 1: a fresh "
                          "instance per request, as wasmtime serve)")
    srv.add_argument("--dump", action="store_true", help="print one line per HTTP exchange (incoming and outgoing)")
    srv.add_argument("--inspect", action="store_true",
                     help="serve mitmproxy's web UI (incoming and outgoing exchanges live; URL on stderr)")
    srv.add_argument("--inspect-host", metavar="ADDR", help="address the web UI listens on (default 127.0.0.1)")
    srv.add_argument("--inspect-port", type=_port, metavar="PORT", help="port of the web UI (default: a free one)")
    redact.add_flags(srv)
    add_sandbox_flags(srv)
    _add_common(srv)
    srv.set_defaults(handler=_cmd_serve)

    conv = sub.add_parser("convert", help="convert a trace between CBOR and JSON Lines (losslessly)")
    conv.add_argument("input")
    conv.add_argument("output")
    conv.add_argument("-f", "--format", choices=["cbor", "json"], help="output encoding (default: from extension)")
    conv.add_argument("--force", action="store_true", help="replace an existing output file")
    conv.set_defaults(handler=_cmd_convert)

    har = sub.add_parser("har", help="export a trace's HTTP exchanges as HAR 1.2")
    har.add_argument("trace")
    har.add_argument("-o", "--output", required=True, metavar="OUT.har")
    har.add_argument("--force", action="store_true", help="replace an existing output file")
    har.set_defaults(handler=_cmd_export, export="export_har")

    flows = sub.add_parser("flows", help="export a trace's HTTP exchanges and socket traffic (TCP, UDP, "
                                          "lookups) as a mitmproxy flow file")
    flows.add_argument("trace")
    flows.add_argument("-o", "--output", required=True, metavar="OUT.mitm",
                       help="open it with `mitmweb -r OUT.mitm` or `mitmdump -nr OUT.mitm`")
    flows.add_argument("--force", action="store_true", help="replace an existing output file")
    flows.set_defaults(handler=_cmd_export, export="export_mitm")

    insp = sub.add_parser(
        "inspect", help="show a trace: header, every event in order (HTTP exchanges in full), outcome, counts",
        description="Show a trace, streamed in trace order: the header, one line per event (an HTTP "
                    "exchange as one block with its headers and bodies), then the outcome and the counts.")
    insp.add_argument("trace")
    insp.add_argument("--json", action="store_true",
                      help="JSON Lines: a header line, one line per shown event, an outcome line with the counts")
    insp.add_argument("--no-events", action="store_true", help="header, outcome and counts only")
    insp.add_argument("--call", action="append", default=[], metavar="PATTERN",
                      help="only events whose call or interface matches this glob ('wasi:random/*'); an HTTP "
                           "exchange also matches by URL or 'METHOD URL'; repeat for more")
    insp.add_argument("--events", metavar="START:STOP",
                      help="only events START (included) to STOP (excluded), the indexes shown; START:, :STOP, N")
    insp.add_argument("--limit", type=_count, metavar="N", help="show at most N events (after --call/--events)")
    insp.add_argument("--body-limit", type=_count, metavar="N",
                      help="show N characters (bytes if binary) of each HTTP body; 0: all "
                           "(default 4096, with --json all)")
    insp.set_defaults(handler=_cmd_inspect)

    dif = sub.add_parser(
        "diff", help="compare two traces: header, events (the first difference in context), counts, outcome",
        description="Compare two traces, streamed: the header fields that shape the run, the events in\n"
                    "order (the first difference with context; an HTTP exchange as a request/response diff),\n"
                    "the counts per interface and the outcomes. Versions and the recording date are shown\n"
                    "but not compared. Exit 0 when equal, 1 when they differ.")
    dif.add_argument("a", metavar="A", help="a trace")
    dif.add_argument("b", metavar="B", help="the trace to compare it with")
    dif.add_argument("-C", "--context", type=_count, default=3, metavar="N",
                     help="events shown before and after the first difference (default 3)")
    dif.add_argument("--json", action="store_true", help="one JSON object instead of text")
    dif.set_defaults(handler=_cmd_diff)

    for command in [p, *sub.choices.values()]:
        command.formatter_class = _Formatter
        command.allow_abbrev = False  # a guest's --in must not become rr's --inspect
    return p


def _add_component(p: argparse.ArgumentParser) -> None:
    p.add_argument("component", help="the .wasm command component")
    p.add_argument("args", nargs="*", default=[], help="arguments for the guest (put them after --)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="say more on stderr")
    p.add_argument("--no-cache", action="store_true", help="do not use the compiled-component cache")
    p.add_argument("--no-fast-path", action="store_true",
                   help="move stream bytes through plain wasi:io/streams (no generated adapter)")


def _guest_args(args: argparse.Namespace) -> list[str]:
    return list(args.args) + list(args.after_dashdash)


def _report(message: str) -> None:
    _flush_stdout()
    with contextlib.suppress(OSError):  # a closed pipe on stderr must not hide the status
        print(f"rr: {message}", file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import runner
    from .sandbox_args import sandbox_from_args

    program = _load(args)
    if args.verbose:
        _verbose_program(program)
    sandbox = sandbox_from_args(args, program.path.name, _guest_args(args))
    outcome = runner.run(program, sandbox, limits=runner.Limits(args.max_memory, args.timeout))
    return _finish(outcome)


def _cmd_record(args: argparse.Namespace) -> int:
    from . import redact, runner, session
    from .sandbox_args import sandbox_from_args

    inspect = args.inspect or args.inspect_wait
    if not inspect and (args.inspect_host or args.inspect_port):
        raise UsageError(_usage_message("rr record", "--inspect-host and --inspect-port need --inspect "
                                        "or --inspect-wait"))
    if os.path.exists(args.trace) and os.path.samefile(args.trace, args.component):
        raise UsageError(f"-t {args.trace}: that is the component itself (--force would replace it)")
    program = _load(args)
    if args.verbose:
        _verbose_program(program)
    sandbox = sandbox_from_args(args, program.path.name, _guest_args(args))
    fmt = {"json": "jsonl"}.get(args.format, args.format)
    web_urls: list[str] = []
    if inspect and not program.imports_interface("wasi:http/"):
        _report(f"note: --inspect: {program.path.name} does not import wasi:http, so there is no web UI")
    elif inspect:
        from .proxy import WebUIError, check_web_address
        try:  # before the trace is created: a port in use must not cost an existing trace
            check_web_address(args.inspect_host or "127.0.0.1", args.inspect_port)
        except WebUIError as e:
            raise UsageError(f"--inspect: {e}") from None

    def on_web_url(url: str) -> None:
        web_urls.append(url)
        _report(f"inspect HTTP live at {url}")

    http = session.HttpOptions(extra_ca=args.ca_cert, inspect=inspect,
                               inspect_host=args.inspect_host or "127.0.0.1", inspect_port=args.inspect_port,
                               dump=args.dump, verbose=args.verbose, on_web_url=on_web_url,
                               after_run=(lambda: _after_recording(web_urls, args.trace, args.inspect_wait))
                               if inspect else None)
    rec = session.record(program, sandbox, args.trace, fmt,
                         runner.Limits(args.max_memory, args.timeout), overwrite=args.force, http=http,
                         redaction=redact.from_args(args), record_output=args.record_output)
    _flush_stdout()
    if rec.withheld:
        _report(f"note: --record-output: {' and '.join(rec.withheld)} hold{'s' * (len(rec.withheld) == 1)} a redacted "
                f"value: recorded as digests only, not the bytes")
    flows = f", {rec.flows} HTTP exchanges" if rec.flows else ""
    saved = f"recorded {rec.events} events{flows} to {rec.path}"
    if rec.outcome.kind == "exit":
        _report(f"{saved} ({session.describe_outcome(rec.outcome)})")
    else:  # one line: how the guest ended, then what was kept
        _report(f"{_ending(rec.outcome)}; {saved}")
    return int(rec.outcome.status)


def _after_recording(web_urls: list[str], trace: str, wait: bool) -> None:
    """The trace is complete: keep the web UI up for whoever can press Ctrl-C (a terminal),
    or when asked to (--inspect-wait); otherwise say that it closes."""
    if not web_urls:
        return
    if wait or sys.stderr.isatty():
        _keep_web_ui_up(web_urls[0], trace)
    else:
        _report("the guest has finished; the web UI closes with the recording (stderr is not a terminal: "
                "--inspect-wait keeps it up)")


def _keep_web_ui_up(url: str, trace: str) -> None:
    """Until Ctrl-C (or SIGTERM: `docker compose stop`)."""
    import signal
    import threading

    stop = threading.Event()
    # Handlers rather than KeyboardInterrupt: a Ctrl-C that comes right after the message
    # must end the wait too, not interrupt rr. An ignored SIGINT (a background job) stays so.
    wanted = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in wanted}
    try:
        _report(f"the guest has finished and {trace} is complete; the web UI stays up at {url} until Ctrl-C")
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cmd_verify(args: argparse.Namespace) -> int:
    from . import redact, runner, session
    from .sandbox_args import sandbox_from_args
    from .verify import verify

    if args.replays < 1:
        raise UsageError(_usage_message("rr verify", "--replays: at least 1 replay is needed to verify"))
    if args.trace and os.path.exists(args.trace) and os.path.samefile(args.trace, args.component):
        raise UsageError(f"-t {args.trace}: that is the component itself (--force would replace it)")
    program = _load(args)
    sandbox = sandbox_from_args(args, program.path.name, _guest_args(args))
    result = verify(program, sandbox, args.trace, args.replays, fmt={"json": "jsonl"}.get(args.format, args.format),
                    limits=runner.Limits(args.max_memory, args.timeout), overwrite=args.force,
                    http=session.HttpOptions(extra_ca=args.ca_cert, verbose=args.verbose),
                    redaction=redact.from_args(args), record_output=args.record_output)
    _flush_stdout()
    for line in result.report():
        _report(line)
    return result.status


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve.cli import serve_command
    return serve_command(args, _report)


def _cmd_replay(args: argparse.Namespace) -> int:
    from . import session

    if args.component_changed:
        return _regression_replay(args)
    from .serve.cli import replay_if_server_trace
    served = replay_if_server_trace(args, _report)
    if served is not None:
        return served
    if args.request is not None:
        raise UsageError(f"--request: {args.trace} is not a server trace (rr serve -t)")
    try:
        program = _load(args)
    except ComponentError as e:
        from .serve.cli import refusal
        raise refusal(args, e) from None
    with _reading_trace(args.trace):
        result = session.replay(program, args.trace, sys.stdout.buffer, sys.stderr.buffer, until=args.until,
                                check_output=not args.no_output_check)
    _flush_stdout()
    if result.stopped_at is not None:
        if result.incomplete:
            _report(f"trace is incomplete ({result.incomplete}): replay stopped before event "
                    f"{result.stopped_at}, where the recording ends")
            return EXIT_BAD_TRACE
        _report(f"replay stopped before event {result.stopped_at} (--until)")
        return 0
    status = _finish(result.outcome)
    if result.incomplete:
        # The guest got all it asked for, but the recording never finished: the replay may
        # not be the run that was recorded.
        _report(f"trace is incomplete ({result.incomplete}): the replay used every recorded event "
                f"and the guest ended ({session.describe_outcome(result.outcome)}), but the "
                f"recording did not finish")
        return EXIT_BAD_TRACE
    if args.verbose:
        _report(f"replayed {result.events} events ({session.describe_outcome(result.outcome)})")
    return status


def _regression_replay(args: argparse.Namespace) -> int:
    from .regression import refuse_server_trace, replay_other_build

    for flag, value in (("--until", args.until), ("--request", args.request)):
        if value is not None:
            raise UsageError(_usage_message("rr replay", f"{flag} and --component-changed do not go together"))
    with _reading_trace(args.trace):
        refuse_server_trace(args.trace)
    program = _load(args)
    with _reading_trace(args.trace):
        report = replay_other_build(program, args.trace, sys.stdout.buffer, sys.stderr.buffer,
                                    check_output=not args.no_output_check)
    _flush_stdout()
    _report("\n".join(report.lines))
    return report.status


@contextlib.contextmanager
def _reading_trace(path: str) -> Iterator[None]:
    """A missing or unreadable trace is a bad-trace error (122), said in one line."""
    from .session import BadTrace
    from .trace import TraceError

    try:
        yield
    except TraceError as e:   # first: TraceNotFoundError is an OSError too
        raise BadTrace(str(e)) from None
    except OSError as e:
        if e.filename is None or os.fspath(e.filename) != os.fspath(path):
            raise
        if isinstance(e, FileNotFoundError):
            raise BadTrace(f"{path}: no such file") from None
        raise BadTrace(f"{path}: cannot read: {e.strerror}") from None


def _cmd_convert(args: argparse.Namespace) -> int:
    from .session import trace_output_errors
    from .trace import convert

    fmt = {"json": "jsonl"}.get(args.format, args.format)
    with trace_output_errors(), _reading_trace(args.input):
        convert(args.input, args.output, fmt, overwrite=args.force)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from . import har

    with _reading_trace(args.trace):
        exported = getattr(har, args.export)(args.trace, args.output, overwrite=args.force)
    _report(exported.summary())
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import Selection, inspect_trace, parse_range

    start, stop = parse_range(args.events) if args.events else (0, None)
    selection = Selection(calls=args.call, start=start, stop=stop, limit=args.limit)
    with _reading_trace(args.trace):
        inspect_trace(args.trace, as_json=args.json, show_events=not args.no_events, selection=selection,
                      body_limit=args.body_limit)
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from .diff import diff_traces, write_json, write_text
    from .errors import EXIT_DIFFER

    with _reading_trace(args.a), _reading_trace(args.b):
        result = diff_traces(args.a, args.b, context=args.context)
    (write_json if args.json else write_text)(result, sys.stdout)
    return 0 if result.equal else EXIT_DIFFER


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The component named on the command line, compiled (or from the cache)."""
    from . import runner
    return runner.load(args.component, use_cache=not args.no_cache,
                       fast_path=False if args.no_fast_path else None)


def _verbose_program(program) -> None:  # type: ignore[no-untyped-def]
    from . import runner
    _report(f"{program.path.name}: sha256 {program.sha256[:16]}..., {len(program.wasm)} bytes, "
            f"compiled-cache {'hit' if program.cache_hit else 'miss'}")
    for name in runner.unsupported_imports(program):
        _report(f"note: {name} is imported but not implemented (traps if called)")
    if program.fast_path_note:
        _report(f"note: {program.fast_path_note}")
    from .native import describe
    _report(f"note: {describe()}")


def _flush_stdout() -> None:
    """Flush what the guest wrote. If the reader has closed the pipe, the guest has seen its
    writes fail and its own status stands: the rest goes to /dev/null."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _finish(outcome) -> int:  # type: ignore[no-untyped-def]
    _flush_stdout()
    if outcome.kind != "exit":
        _report(_ending(outcome))
    return int(outcome.status)


def _ending(outcome) -> str:  # type: ignore[no-untyped-def]
    return f"guest {outcome.kind}: {outcome.message}" if outcome.kind == "trap" else str(outcome.message)


_GUEST_COMMANDS = ("run", "record", "verify")  # the commands whose extra arguments belong to the guest


def _parse(argv: list[str]) -> argparse.Namespace:
    # Everything after the first `--` belongs to the guest, flags included.
    argv_in = argv
    after: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command is None:
        parser.error(f"unrecognized arguments: {' '.join(extras)}" if extras else
                     f"no command: choose one of {', '.join(_commands(parser))}")
    if extras:
        prog = f"rr {args.command}"
        message = f"unrecognized arguments: {' '.join(extras)}"
        if args.command in _GUEST_COMMANDS:
            message += (f"; arguments for the guest go after `--`, as in: "
                        f"{_with_dashdash(argv, extras, after)}")
        raise UsageError(_usage_message(prog, message))
    if "--" in argv_in and args.command not in _GUEST_COMMANDS:
        hint = " (a replay's guest arguments come from the trace)" if args.command == "replay" else ""
        raise UsageError(_usage_message(f"rr {args.command}", f"takes no `--` arguments{hint}"))
    args.after_dashdash = after
    return args


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._subparsers._group_actions  # type: ignore[union-attr]
            for name in getattr(action, "choices", None) or ()]


def _with_dashdash(argv: list[str], extras: list[str], after: list[str]) -> str:
    """The command line the user meant: `extras` moved after `--` (matched from the right,
    where argparse found them)."""
    import shlex

    keep = list(argv)
    i = len(keep)
    for extra in reversed(extras):
        i = next(j for j in range(i - 1, -1, -1) if keep[j] == extra)
        del keep[i]
    return shlex.join(["rr", *keep, "--", *extras, *after])


def _reopen_closed_stdio() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2, as the wasmtime CLI behaves: the guest's writes
    succeed and go nowhere, reads see end of file. Also keeps a trace rr opens from landing
    on fd 1 and receiving the guest's stdout."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - lives as long as rr


def _silence_stdout() -> None:
    """After a reader closed rr's stdout pipe: send what is left to /dev/null, so the
    interpreter's flush at exit does not print a BrokenPipeError."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signals.install()
    status = _main(argv)
    runner = sys.modules.get("rr.runner")  # a stopped guest may still be blocked in its thread
    stuck = runner is not None and runner.guest_threads_left()
    if stuck or any(t.is_alive() and t.daemon for t in threading.enumerate()):
        # A thread still blocked in a system call (a guest stopped while opening a FIFO, the
        # reader of a silent stdin) must not meet the interpreter's shutdown, which can abort
        # with "Fatal Python error" over a lock it holds. Everything rr writes is written.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    if argv is None and not any(t.is_alive() and t is not threading.current_thread() for t in threading.enumerate()):
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """rr as a program (the `rr` command, `python -m rr`), once `_main` has its status: every
    file rr wrote is closed by now (traces and exports close in their own `with`), so what is
    left is the interpreter's teardown, ~25 ms of freeing modules and wasmtime objects that
    nothing needs. Run the atexit hooks and flush stdout/stderr as that teardown would, then
    leave. A reader that closed the pipe early loses only what it did not want."""
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            if stream is sys.stdout:
                _silence_stdout()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    _reopen_closed_stdio()
    args = None
    try:
        args = _parse(list(sys.argv[1:] if argv is None else argv))
        from .dataclass_cache import cached

        with cached("rr"):   # the methods of rr's own dataclasses come compiled (rr/dataclass_cache.py)
            return args.handler(args)
    except RRError as e:
        _report(str(e))
        return e.status
    except signals.Signalled as e:
        _report(str(e))
        return e.status
    except KeyboardInterrupt:
        _report(signals.MESSAGE["interrupted"])
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except OSError as e:
        # A file the user named could not be opened or written (a directory, a missing parent
        # directory, no permission, disk full): what and where, never a traceback.
        if e.filename is None:
            return _internal_error(e, args)
        status = EXIT_OUTPUT if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG) \
            else EXIT_USAGE
        _report(f"{e.filename}: {e.strerror}")
        return status
    except (SystemExit, GeneratorExit):
        raise   # --help, --version
    except BaseException as e:  # noqa: BLE001 - one line for the user, the traceback with -v
        # BaseException: an rr Unwind (how host code stops the guest) that escaped the runner
        # is a bug in rr too, not a traceback with the status of a guest's exit(1).
        return _internal_error(e, args)


def _internal_error(e: BaseException, args: argparse.Namespace | None) -> int:
    if getattr(args, "verbose", False):
        raise e
    _report(f"internal error: {type(e).__name__}: {e} (run with -v for the traceback)")
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
