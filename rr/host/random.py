"""wasi:random — random, insecure and insecure-seed. All of it is recorded."""

from __future__ import annotations

import os
import random as _pyrandom

from .context import HostContext
from .wit import Interface

random_if = Interface("wasi:random/random")
insecure_if = Interface("wasi:random/insecure")
seed_if = Interface("wasi:random/insecure-seed")

_insecure = _pyrandom.Random()


@random_if.func("get-random-bytes")
def get_random_bytes(host: HostContext, n: int) -> bytes:
    return host.tap("wasi:random/random.get-random-bytes", [n], lambda: os.urandom(n))


@random_if.func("get-random-u64")
def get_random_u64(host: HostContext) -> int:
    return host.tap("wasi:random/random.get-random-u64", [],
                    lambda: int.from_bytes(os.urandom(8), "little"))


@insecure_if.func("get-insecure-random-bytes")
def get_insecure_random_bytes(host: HostContext, n: int) -> bytes:
    return host.tap("wasi:random/insecure.get-insecure-random-bytes", [n], lambda: _insecure.randbytes(n))


@insecure_if.func("get-insecure-random-u64")
def get_insecure_random_u64(host: HostContext) -> int:
    return host.tap("wasi:random/insecure.get-insecure-random-u64", [], lambda: _insecure.getrandbits(64))


@seed_if.func("insecure-seed")
def insecure_seed(host: HostContext) -> tuple[int, int]:
    def live() -> tuple[int, int]:
        seed = int.from_bytes(os.urandom(16), "little")
        return (seed >> 64, seed & ((1 << 64) - 1))
    return tuple(host.tap("wasi:random/insecure-seed.insecure-seed", [], live))  # type: ignore[return-value]
