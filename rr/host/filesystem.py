"""wasi:filesystem — types and preopens.

Minimal for now: no grants means no preopens (C, Zig and JS runtimes ask for them at
start-up, so this must answer, not trap).
"""

from __future__ import annotations

from .context import HostContext
from .wit import Interface

types_if = Interface("wasi:filesystem/types", resources=("descriptor", "directory-entry-stream"))
preopens_if = Interface("wasi:filesystem/preopens")


@preopens_if.func("get-directories")
def get_directories(host: HostContext) -> list[tuple[object, str]]:
    return []


@types_if.func("filesystem-error-code")
def filesystem_error_code(host: HostContext, err: object) -> str | None:
    return None
