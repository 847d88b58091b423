"""The two wasi:http interfaces rr serves; fields.py, types.py and outgoing.py fill them in."""

from ..wit import Interface

# The server-side resources (incoming-request, response-outparam, outgoing-response) have
# no implementations: a command component that imports them still links (the runner
# defines every resource a component imports), and calling them traps naming the function.
types_if = Interface("wasi:http/types")
handler_if = Interface("wasi:http/outgoing-handler")
