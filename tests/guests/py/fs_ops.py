"""fs_ops for componentize-py: the same steps and output as tests/guests/c/fs_ops.c, through
CPython's own wasi-libc (wasip2: wasi:filesystem directly, no preview1 adapter).
Usage: fs_ops_py.wasm <dir>"""

import os
import sys

from wit_world import exports


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Run(exports.Run):
    def run(self) -> None:
        base = sys.argv[1] if len(sys.argv) > 1 else "."
        failures = 0

        def step(name: str, action, detail: str = "") -> None:
            nonlocal failures
            try:
                action()
                print(f"{name}: ok{' ' if detail else ''}{detail}")
            except OSError as e:
                failures += 1
                print(f"{name}: {errno_name(e.errno)}")

        data = b""

        def read_in() -> None:
            nonlocal data
            with open(f"{base}/in.txt", "rb") as f:
                data = f.read()

        try:
            read_in()
            print(f"read in.txt: ok {len(data)} bytes fnv1a64 {fnv1a64(data):016x}")
        except OSError as e:
            failures += 1
            print(f"read in.txt: {errno_name(e.errno)}")

        def write(rel: str, mode: str, content: bytes) -> None:
            with open(f"{base}/{rel}", mode) as f:
                f.write(content)

        step("write copy.txt", lambda: write("copy.txt", "wb", data), f"{len(data)} bytes")
        step("append log.txt", lambda: write("log.txt", "ab", b"fs_ops ran\n"))
        step("mkdir sub", lambda: os.mkdir(f"{base}/sub"))
        step("write sub/a.txt", lambda: write("sub/a.txt", "wb", b"hello\n"))
        print("tree:")
        list_tree(base, "")
        step("rename copy.txt sub/moved.txt", lambda: os.rename(f"{base}/copy.txt", f"{base}/sub/moved.txt"))
        step("unlink sub/a.txt", lambda: os.unlink(f"{base}/sub/a.txt"))
        print("tree:")
        list_tree(base, "")
        print(f"failures {failures}")
        sys.stdout.flush()
        if failures:
            raise SystemExit(1)


def errno_name(err: int | None) -> str:
    import errno
    return errno.errorcode.get(err or 0, "EOTHER")


def list_tree(base: str, rel: str) -> None:
    for name in sorted(os.listdir(f"{base}/{rel}" if rel else base)):
        child = f"{rel}/{name}" if rel else name
        st = os.stat(f"{base}/{child}")
        if os.path.isdir(f"{base}/{child}"):
            print(f"d {child}")
            list_tree(base, child)
        else:
            print(f"f {child} {st.st_size}")
