"""Importing this registers every wasi:http function rr serves (see wit.LAZY)."""

from . import fields, incoming, outgoing, types  # noqa: F401  (registration side effects)
