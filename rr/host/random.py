"""wasi:random — random, insecure and insecure-seed. All of it is recorded."""

from __future__ import annotations

import os
import random as _pyrandom

from ..typecheck import BadValue, show
from .context import HostContext
from .wit import Interface

random_if = Interface("wasi:random/random")
insecure_if = Interface("wasi:random/insecure")
seed_if = Interface("wasi:random/insecure-seed")

_insecure = _pyrandom.Random()


def _exactly_n_bytes(args: list[int], result: object) -> None:
    """Replay: get-(insecure-)random-bytes(n) returns exactly n bytes (the WIT contract)."""
    if type(result) is not bytes:
        raise BadValue(f"{show(result)} is not bytes", "list<u8>")
    if len(result) != args[0]:
        raise BadValue(f"{len(result)} bytes, the guest asked for {args[0]}", "list<u8>")


@random_if.func("get-random-bytes")
def get_random_bytes(host: HostContext, n: int) -> bytes:
    return host.tap("wasi:random/random.get-random-bytes", [n], lambda: os.urandom(n), _exactly_n_bytes)


@random_if.func("get-random-u64")
def get_random_u64(host: HostContext) -> int:
    return host.tap("wasi:random/random.get-random-u64", [],
                    lambda: int.from_bytes(os.urandom(8), "little"))


@insecure_if.func("get-insecure-random-bytes")
def get_insecure_random_bytes(host: HostContext, n: int) -> bytes:
    return host.tap("wasi:random/insecure.get-insecure-random-bytes", [n], lambda: _insecure.randbytes(n),
                    _exactly_n_bytes)


@insecure_if.func("get-insecure-random-u64")
def get_insecure_random_u64(host: HostContext) -> int:
    return host.tap("wasi:random/insecure.get-insecure-random-u64", [], lambda: _insecure.getrandbits(64))


@seed_if.func("insecure-seed")
def insecure_seed(host: HostContext) -> tuple[int, int]:
    def live() -> tuple[int, int]:
        seed = int.from_bytes(os.urandom(16), "little")
        return (seed >> 64, seed & ((1 << 64) - 1))
    return host.tap("wasi:random/insecure-seed.insecure-seed", [], live)  # a list lowers as the tuple
