"""The Python WASI 0.2 host: one module per interface group.

Importing this package registers every interface in `wit.INTERFACES`; the runner
links them under the exact names and versions a component imports.
"""

from . import cli, clocks, filesystem, io, poll, random  # noqa: F401  (registration side effects)
from . import http  # noqa: F401  (wasi:http client)
