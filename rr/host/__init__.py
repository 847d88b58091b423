"""The Python WASI 0.2 host: one module per interface group.

Importing this package registers the interfaces in `wit.INTERFACES`; the runner
links them under the exact names and versions a component imports.
"""

from . import cli, clocks, filesystem, io, poll, random  # noqa: F401  (registration side effects)
# wasi:http and wasi:sockets (rr.host.http, rr.host.sockets) are imported on demand: see wit.LAZY.
from . import fast_streams  # noqa: F401  (rr:fast/streams, for guests wrapped by rr/fastpath)
