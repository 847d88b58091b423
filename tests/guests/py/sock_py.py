"""Socket guest for componentize-py: Python's `socket` module over CPython's wasip2 libc (wasi:sockets
directly, no preview1 adapter). One component with sub-commands, since each build is ~18 MB:

    sock_py.wasm tcp IP PORT [TEXT=hello]       connect, send TEXT + '\\n', read the reply line
    sock_py.wasm udp IP PORT TEXT [TIMEOUT_MS]  send one datagram, wait for one (default 2000 ms)
    sock_py.wasm resolve NAME...                socket.getaddrinfo, one line per distinct address

Lines follow the C guests' (tests/guests/README_SOCKETS.md); a failure prints `<step> error <errno
name>` (`EAI_*` for lookups), as a Python program sees it, and the run exits 1.
"""

import errno
import socket
import sys

import encodings.idna  # noqa: F401  getaddrinfo encodes the name with it; missing, the guest traps

from wit_world import exports


def fail(step: str, e: OSError) -> None:
    print(f"{step} error {errno.errorcode.get(e.errno or 0, 'EOTHER')}")
    sys.stdout.flush()
    raise SystemExit(1)


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def show(address: tuple) -> str:
    ip, port = address[0], address[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def tcp(ip: str, port: int, text: str = "hello") -> None:
    try:
        s = socket.socket(family_of(ip), socket.SOCK_STREAM)
    except OSError as e:
        fail("socket", e)
    try:
        s.connect((ip, port))
    except OSError as e:
        fail("connect", e)
    print(f"connected {show(s.getpeername())}")
    print(f"local {s.getsockname()[0]}")
    s.sendall(text.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    print(f"reply {reply.rstrip(b'\n').decode()}" if reply else "reply EOF")
    s.close()
    print("closed")


def udp(ip: str, port: int, text: str, timeout_ms: int = 2000) -> None:
    try:
        s = socket.socket(family_of(ip), socket.SOCK_DGRAM)
    except OSError as e:
        fail("socket", e)
    try:
        s.connect((ip, port))
        sent = s.send(text.encode())
    except OSError as e:
        fail("send", e)
    print(f"sent {sent} bytes")
    s.settimeout(timeout_ms / 1000)
    try:
        data, peer = s.recvfrom(65536)
    except TimeoutError:
        print("timeout")
        return
    except OSError as e:
        fail("receive", e)
    print(f"reply {data.decode()} from {show(peer)}")


def resolve(names: list[str]) -> int:
    failures = 0
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            codes = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
            print(f"{name} error {codes.get(e.errno, e.errno)}")
            failures += 1
            continue
        seen = []
        for info in infos:
            if info[4][0] not in seen:
                seen.append(info[4][0])
                print(f"{name} {info[4][0]}")
    return failures


class Run(exports.Run):
    def run(self) -> None:
        args = sys.argv[1:]
        usage = "usage: sock_py.wasm tcp IP PORT [TEXT] | udp IP PORT TEXT [TIMEOUT_MS] | resolve NAME..."
        try:
            if args[:1] == ["tcp"] and len(args) in (3, 4):
                tcp(args[1], int(args[2]), *args[3:])
            elif args[:1] == ["udp"] and len(args) in (4, 5):
                udp(args[1], int(args[2]), args[3], *(int(a) for a in args[4:]))
            elif args[:1] == ["resolve"] and len(args) >= 2:
                if resolve(args[1:]):
                    sys.stdout.flush()
                    raise SystemExit(1)
            else:
                raise ValueError
        except ValueError:
            print(usage, file=sys.stderr)
            raise SystemExit(2)
        sys.stdout.flush()
