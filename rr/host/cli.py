"""wasi:cli — environment, exit, stdio and terminal-*.

The sandbox decides what the guest sees: only the arguments, variables and cwd the
user granted. Arguments, environment and cwd are recorded too, so that a replay
needs nothing but the trace.
"""

from __future__ import annotations

from typing import Any

from ..abi import GuestExit
from ..typecheck import BadValue, show
from .context import HostContext
from .io import FileInput, FileOutput
from .wit import Interface

env_if = Interface("wasi:cli/environment")
exit_if = Interface("wasi:cli/exit")
stdin_if = Interface("wasi:cli/stdin")
stdout_if = Interface("wasi:cli/stdout")
stderr_if = Interface("wasi:cli/stderr")
term_in_if = Interface("wasi:cli/terminal-input")
term_out_if = Interface("wasi:cli/terminal-output")
term_stdin_if = Interface("wasi:cli/terminal-stdin")
term_stdout_if = Interface("wasi:cli/terminal-stdout")
term_stderr_if = Interface("wasi:cli/terminal-stderr")


@env_if.func("get-arguments")
def get_arguments(host: HostContext) -> list[str]:
    return host.tap("wasi:cli/environment.get-arguments", [], lambda: list(host.sandbox.argv))


def _pairs(args: list[Any], result: Any) -> None:
    """Replay: the environment is a list of [name, value] pairs (the strings: the WIT check)."""
    if type(result) is not list:
        raise BadValue(f"{show(result)} is not a list", "list<tuple<string, string>>")
    for i, pair in enumerate(result):
        if type(pair) is not list or len(pair) != 2:
            raise BadValue(f"item {i}: {show(pair)} is not a [name, value] pair", "list<tuple<string, string>>")


@env_if.func("get-environment")
def get_environment(host: HostContext) -> list[tuple[str, str]]:
    pairs = host.tap("wasi:cli/environment.get-environment", [],
                     lambda: [[k, v] for k, v in host.sandbox.env], _pairs)
    return [(k, v) for k, v in pairs]


@env_if.func("initial-cwd")
def initial_cwd(host: HostContext) -> str | None:
    return host.tap("wasi:cli/environment.initial-cwd", [], lambda: host.sandbox.cwd)


@exit_if.func("exit")
def exit_(host: HostContext, status: tuple[str, None]) -> None:
    raise GuestExit(0 if status[0] == "ok" else 1)


@exit_if.func("exit-with-code")
def exit_with_code(host: HostContext, code: int) -> None:
    raise GuestExit(code)


class Stdin(FileInput):
    recorded = True


@stdin_if.func("get-stdin")
def get_stdin(host: HostContext) -> FileInput:
    return host.service("stdin", lambda: Stdin(host, "stdin", host.sandbox.stdin))


@stdout_if.func("get-stdout")
def get_stdout(host: HostContext) -> FileOutput:
    return host.service("stdout", lambda: FileOutput("stdout", host.sandbox.stdout))


@stderr_if.func("get-stderr")
def get_stderr(host: HostContext) -> FileOutput:
    return host.service("stderr", lambda: FileOutput("stderr", host.sandbox.stderr))


# The sandbox never gives the guest a terminal: its stdio may be one on the host, but
# whether it is would be one more nondeterministic input, and colour codes in a
# recording would differ from a replay piped to a file.
@term_stdin_if.func("get-terminal-stdin")
def get_terminal_stdin(host: HostContext) -> None:
    return None


@term_stdout_if.func("get-terminal-stdout")
def get_terminal_stdout(host: HostContext) -> None:
    return None


@term_stderr_if.func("get-terminal-stderr")
def get_terminal_stderr(host: HostContext) -> None:
    return None
