"""Socket events in words, for `rr inspect`: under a wasi:sockets event (or a TCP stream's bytes)
one line says what happened to which socket, with the bytes as text where they are text.

    3  wasi:sockets/tcp.start-connect('tcp-1', '127.0.0.1:5432') -> None
           tcp-1 connects to 127.0.0.1:5432
    9  wasi:io/streams.write('tcp-1-out', <9 bytes 68692074686572650a>) -> None
           tcp-1 > 9 bytes "hi there\\n"
"""

from __future__ import annotations

from typing import Any

from .trace import Event

_STREAM_WRITES = {"write", "blocking-write-and-flush"}
_STREAM_READS = {"read", "blocking-read"}


def bytes_text(data: bytes, limit: int) -> str:
    """`9 bytes "hi there\\n"`: the bytes as a quoted string if they are UTF-8 text (escapes for
    control characters), else their first bytes in hex; at most `limit` characters (0: all)."""
    size = f"{len(data)} byte{'s' * (len(data) != 1)}"
    if not data:
        return size
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        shown = data[:limit or len(data)][:32]
        return f"{size} {shown.hex()}{'...' if len(shown) < len(data) else ''}"
    cut = text[:limit] if limit else text
    quoted = "".join(_escape(c) for c in cut)
    return f'{size} "{quoted}"' + ("..." if len(cut) < len(text) else "")


def _escape(c: str) -> str:
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    if c == "\t":
        return "\\t"
    if c in '"\\':
        return "\\" + c
    if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0:
        return f"\\x{ord(c):02x}"
    return c


class SocketNotes:
    """Remembers what a lookup asked for, so its answers can say it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._names: dict[str, str] = {}

    def lines(self, event: Event) -> list[str]:
        iface, _, function = event.call.rpartition(".")
        args, result, failed = event.args, event.result, event.failed
        label = args[0] if args and isinstance(args[0], str) else "?"
        if failed and result == "would-block":
            return []
        if iface == "wasi:io/streams" and label.startswith("tcp-"):
            return self._stream(label, function, args, result, failed)
        if iface == "wasi:sockets/tcp":
            return self._tcp(label, function, args, result, failed)
        if iface == "wasi:sockets/udp":
            return self._udp(label, function, args, result, failed)
        if iface == "wasi:sockets/ip-name-lookup":
            return self._lookup(label, function, args, result, failed)
        if iface in ("wasi:sockets/tcp-create-socket", "wasi:sockets/udp-create-socket"):
            kind = "TCP" if "tcp" in iface else "UDP"
            return [f"{kind} socket ({args[0] if args else '?'}) refused: {result}"] if failed else []
        return []

    def _stream(self, label: str, function: str, args: list[Any], result: Any, failed: bool) -> list[str]:
        sock, _, side = label.rpartition("-")
        if side == "out" and function in _STREAM_WRITES and len(args) > 1 and isinstance(args[1], bytes):
            return [f"{sock} > {bytes_text(args[1], self.limit)}"]
        if side == "in" and function in _STREAM_READS:
            if failed:
                return [f"{sock} < end of stream" if result == "closed" else f"{sock} < failed: {result}"]
            if isinstance(result, bytes) and result:
                return [f"{sock} < {bytes_text(result, self.limit)}"]
        return []

    def _tcp(self, label: str, function: str, args: list[Any], result: Any, failed: bool) -> list[str]:
        if failed:
            return [f"{label} {function} failed: {result}"]
        target = args[1] if len(args) > 1 else None
        said = {
            "start-connect": f"connects to {target}",
            "finish-connect": "connected",
            "start-bind": f"binds {target}",
            "finish-listen": "listens",
            "accept": "accepted a connection (the next new tcp label)",
            "shutdown": f"shuts down {target}",
            "local-address": f"is at {result}",
            "remote-address": f"is connected to {result}",
        }.get(function)
        return [f"{label} {said}"] if said else []

    def _udp(self, label: str, function: str, args: list[Any], result: Any, failed: bool) -> list[str]:
        sock = label.removesuffix("-in").removesuffix("-out")
        if failed:
            return [f"{sock} {function} failed: {result}"]
        if function == "start-bind":
            return [f"{sock} binds {args[1] if len(args) > 1 else '?'}"]
        if function == "stream":
            remote = args[1] if len(args) > 1 else None
            return [f"{sock} sends to {remote} only" if remote else f"{sock} sends anywhere"]
        lines = []
        if function == "send" and len(args) > 1 and isinstance(args[1], list):
            sent = result if isinstance(result, int) else 0
            for i, datagram in enumerate(args[1]):
                if isinstance(datagram, list) and datagram and isinstance(datagram[0], bytes):
                    to = f" to {datagram[1]}" if len(datagram) > 1 and datagram[1] else ""
                    note = "" if i < sent else "  (not sent)"
                    lines.append(f"{sock} > {bytes_text(datagram[0], self.limit)}{to}{note}")
        elif function == "receive" and isinstance(result, list):
            for datagram in result:
                if isinstance(datagram, list) and datagram and isinstance(datagram[0], bytes):
                    frm = f" from {datagram[1]}" if len(datagram) > 1 else ""
                    lines.append(f"{sock} < {bytes_text(datagram[0], self.limit)}{frm}")
        return lines

    def _lookup(self, label: str, function: str, args: list[Any], result: Any, failed: bool) -> list[str]:
        if function == "resolve-addresses":
            name = str(args[1]) if len(args) > 1 else "?"
            self._names[label] = name
            return [f"{label} looks up {name!r}" + (f": {result}" if failed else "")]
        if function != "resolve-next-address":
            return []
        name = repr(self._names[label]) if label in self._names else label
        if failed:
            return [f"{label} {name}: {result}"]
        return [f"{label} {name} -> {result}" if result is not None else f"{label} {name}: no more addresses"]
