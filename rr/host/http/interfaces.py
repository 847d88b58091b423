"""The two wasi:http interfaces rr serves; fields.py, types.py and outgoing.py fill them in."""

from ..wit import Interface

# Every resource wasi:http/types defines. The server-side ones (incoming-request,
# response-outparam, outgoing-response) have no implementations: a command component
# that imports them still links, and calling them traps naming the function.
types_if = Interface("wasi:http/types", resources=(
    "fields", "incoming-request", "outgoing-request", "request-options", "response-outparam",
    "incoming-response", "incoming-body", "future-trailers", "outgoing-response",
    "outgoing-body", "future-incoming-response",
))
handler_if = Interface("wasi:http/outgoing-handler")
