"""rr's command line: parse, call the library, map failures to one line and a status."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import EXIT_INTERNAL, RRError
from .sandbox_args import add_sandbox_flags

EXIT_STATUS_HELP = """\
exit status:
  the guest's own status when it exits (0-119 in practice)
  121  replay diverged from the trace      122  bad, corrupt or mismatched trace
  123  --max-memory exceeded               124  --timeout exceeded
  125  usage error, missing/invalid file   126  component needs what rr lacks
  134  the guest trapped                    70  internal error in rr (a bug)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rr", description="Record and replay WASI 0.2 command components.",
        epilog=EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"rr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a component in the sandbox (nothing recorded)",
                         epilog=EXIT_STATUS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_component(run)
    add_sandbox_flags(run)
    _add_common(run)
    run.set_defaults(handler=_cmd_run)
    return p


def _add_component(p: argparse.ArgumentParser) -> None:
    p.add_argument("component", help="the .wasm command component")
    p.add_argument("args", nargs="*", help="arguments for the guest (put them after --)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="say more on stderr")
    p.add_argument("--no-cache", action="store_true", help="do not use the compiled-component cache")


def _guest_args(args: argparse.Namespace) -> list[str]:
    return list(args.args) + list(args.after_dashdash)


def _report(message: str) -> None:
    sys.stdout.flush()
    print(f"rr: {message}", file=sys.stderr, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import runner
    from .sandbox_args import sandbox_from_args

    program = runner.load(args.component, use_cache=not args.no_cache)
    if args.verbose:
        _verbose_program(program)
    sandbox = sandbox_from_args(args, program.path.name, _guest_args(args))
    outcome = runner.run(program, sandbox, limits=runner.Limits(args.max_memory, args.timeout))
    return _finish(outcome)


def _verbose_program(program) -> None:  # type: ignore[no-untyped-def]
    from . import runner
    _report(f"{program.path.name}: sha256 {program.sha256[:16]}..., {len(program.wasm)} bytes, "
            f"compiled-cache {'hit' if program.cache_hit else 'miss'}")
    for name in runner.unsupported_imports(program):
        _report(f"note: {name} is imported but not implemented (traps if called)")


def _finish(outcome) -> int:  # type: ignore[no-untyped-def]
    sys.stdout.flush()
    if outcome.kind != "exit":
        _report(f"guest {outcome.kind}: {outcome.message}" if outcome.kind == "trap"
                else str(outcome.message))
    return outcome.status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` belongs to the guest, flags included.
    after: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.after_dashdash = after
    try:
        return args.handler(args)
    except RRError as e:
        _report(str(e))
        return e.status
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    except BrokenPipeError:
        return 141
    except Exception as e:  # noqa: BLE001 - one line for the user, the traceback with -v
        if getattr(args, "verbose", False):
            raise
        _report(f"internal error: {type(e).__name__}: {e} (run with -v for the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
