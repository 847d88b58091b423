"""wasi:http/types and wasi:http/outgoing-handler: the client side of wasi:http, and the
server side a wasi:http/incoming-handler is given (incoming.py, for `rr serve`).

The guest builds requests out of `fields` and `outgoing-request`; `handle` starts the
transfer on a thread of its own (transfer.py) through a `Transport` (transport.py):
straight to the network, or in plaintext absolute form to rr's embedded proxy, which
records the flows. The host records only what depends on timing: which futures and
streams were ready and how many bytes each body read returned (bodies.py).

Importing the package registers nothing (sandbox_args and session need only grant.py,
without http.client and ssl); `register` does, when a component imports wasi:http.
"""
