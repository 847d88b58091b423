"""The two wasi:http interfaces rr serves; fields.py, types.py and outgoing.py fill them in."""

from ..wit import Interface

types_if = Interface("wasi:http/types")
handler_if = Interface("wasi:http/outgoing-handler")
