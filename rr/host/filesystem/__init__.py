"""wasi:filesystem — types and preopens, confined to the sandbox's `--dir`/`--dir-rw` grants.

  errors.py         OSError errno -> error-code
  sandbox_paths.py  path resolution that never leaves a preopen
  descriptors.py    descriptors, file streams, directory listings
  interface.py      the WIT functions (registered on import)
"""

from . import interface  # noqa: F401  (registration side effects)
