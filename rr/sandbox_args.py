"""Parsing the sandbox flags shared by `rr run` and `rr record` into a Sandbox."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # imported where used: building the parser must not load the host
    from .host.context import Preopen, Sandbox
    from .host.sockets.grant import SocketGrant

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$", re.IGNORECASE)


def add_sandbox_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sandbox (nothing is granted unless asked for)")
    g.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="set an environment variable for the guest (repeatable)")
    g.add_argument("--inherit-env", action="store_true",
                   help="pass rr's whole environment to the guest (before --env)")
    g.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                   help="grant a host directory, read-only, at GUEST (default: same path)")
    g.add_argument("--dir-rw", action="append", default=[], metavar="HOST[::GUEST]",
                   help="grant a host directory read-write")
    g.add_argument("--allow-http", action="append", default=[], metavar="PATTERN",
                   help="allow outgoing HTTP to PATTERN: HOST, HOST:PORT, *.DOMAIN, [IPv6]:PORT "
                        "or * for all (repeatable; default: none)")
    g.add_argument("--allow-net", action="append", default=[], metavar="PATTERN",
                   help="allow wasi:sockets to one address (and switch TCP and UDP on): IP:PORT, "
                        "[IPv6]:PORT, IP (any port), NETWORK/BITS:PORT, NAME:PORT (the guest may look "
                        "NAME up and use what it resolves to), *.DOMAIN:PORT, or * for all; PORT may "
                        "be * (repeatable; default: none)")
    g.add_argument("-S", dest="wasmtime_s", action="append", default=[], metavar="OPT[,OPT]",
                   help="as the wasmtime CLI: http (all outgoing HTTP), inherit-network (every "
                        "address, TCP and UDP on), allow-ip-name-lookup, tcp[=y|n], udp[=y|n]")
    g.add_argument("--max-memory", metavar="SIZE", type=parse_size,
                   help="limit each linear memory of the guest, e.g. 64M, 1G (exit status 123 if "
                        "it cannot even start); recorded, and applied again on replay")
    g.add_argument("--timeout", metavar="SECONDS", type=parse_timeout,
                   help="stop the guest after this many seconds (exit status 124); a replay "
                        "stops at the same point, without a clock")


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (a number of bytes with an optional "
                                         "K, M, G or T, e.g. 64M or 1G)")
    number, unit = float(m.group(1)), m.group(2).upper()
    size = int(number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit])
    if size <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes, not {text!r}")
    return size


def parse_timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r} (e.g. 10 or 0.5)")
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text!r}")
    return seconds


def refuse_on_replay(flag: str):  # type: ignore[no-untyped-def]
    """The `type=` of a limit flag given to `rr replay`: always a usage error, saying why."""
    def refuse(_text: str) -> None:
        raise argparse.ArgumentTypeError(
            f"replay applies the limits recorded in the trace (see `rr inspect`); {flag} cannot be given to replay")
    return refuse


def _shown(text: str) -> str:
    """`text` as typed: bytes that are not UTF-8 (surrogate-escaped by Python) as \\xNN."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _utf8(what: str, text: str) -> str:
    """What the guest sees is a WIT string, so UTF-8 only: refused here, as the wasmtime CLI
    refuses such arguments, instead of failing inside the first host call that hands it over."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} '{_shown(text)}' is not valid UTF-8 (guests see UTF-8 strings only)") from None
    return text


def _preopen(spec: str, writable: bool) -> Preopen:
    from .host.context import Preopen

    host, sep, guest = spec.partition("::")
    flag = "--dir-rw" if writable else "--dir"
    if not host:
        raise UsageError(f"{flag} '{_shown(spec)}': empty host path")
    if not os.path.isdir(host):
        raise UsageError(f"{flag} '{_shown(spec)}': {_shown(host)} is not a directory")
    # Only the guest's name must be UTF-8: the host path is opened as the bytes it is.
    guest = _utf8(f"{flag} {_shown(spec)}: guest path", guest if sep else host)
    return Preopen(host=os.path.abspath(host), guest=guest, writable=writable)


def _s_options(args: argparse.Namespace) -> list[str]:
    """Every -S option, comma-joined ones split, in command-line order."""
    return [option.strip() for value in args.wasmtime_s for option in value.split(",")]


def _http_allow(args: argparse.Namespace) -> list[str]:
    if not args.wasmtime_s and not args.allow_http:
        return []
    from .host.http.grant import BadPattern, HttpGrant, wasmtime_s_option
    from .host.sockets.grant import is_socket_option

    patterns: list[str] = []
    try:
        for option in _s_options(args):
            if not is_socket_option(option):
                patterns = wasmtime_s_option(option) if option.partition("=")[0] == "http" else patterns
    except BadPattern as e:
        raise UsageError(str(e)) from None
    for pattern in args.allow_http:
        try:
            HttpGrant([pattern])
        except BadPattern as e:
            raise UsageError(f"--allow-http {e}") from None
        patterns.append(pattern.strip())
    return list(dict.fromkeys(patterns))


def _socket_grant(args: argparse.Namespace) -> SocketGrant:
    from .host.sockets.grant import BadGrant, SocketGrant, is_socket_option

    grant = SocketGrant()
    for option in _s_options(args):
        name = option.partition("=")[0]
        if name != "http" and not is_socket_option(option):
            raise UsageError(f"-S {option!r}: rr takes only -S http, inherit-network, allow-ip-name-lookup, "
                             "tcp and udp (use rr's own flags for the rest: --env, --dir, --allow-http, --allow-net)")
        if is_socket_option(option):
            try:
                grant.s_option(option)
            except BadGrant as e:
                raise UsageError(str(e)) from None
    for pattern in getattr(args, "allow_net", ()):  # the Python API builds args without it
        try:
            grant.allow(pattern)
        except BadGrant as e:
            raise UsageError(f"--allow-net {e}") from None
    return grant


def sandbox_from_args(args: argparse.Namespace, program_name: str, guest_args: list[str]) -> Sandbox:
    from .host.context import Sandbox

    env: dict[str, str] = dict(os.environ) if args.inherit_env else {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected K=V")
        env[key] = value
    for key, value in env.items():
        _utf8("environment variable", f"{key}={value}")
    argv = [_utf8("component name (the guest's argv[0])", program_name),
            *(_utf8("argument", a) for a in guest_args)]
    preopens = [_preopen(d, False) for d in args.dir] + [_preopen(d, True) for d in args.dir_rw]
    sockets = _socket_grant(args)
    return Sandbox(
        argv=argv,
        http_allow=_http_allow(args),
        sockets=sockets,
        env=list(env.items()),
        preopens=preopens,
        cwd=None,
        stdin=sys.stdin.buffer if sys.stdin is not None else None,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
    )
