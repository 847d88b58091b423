"""The fast byte path: unmodified guests get wasi:io/streams' byte movers through a
generated adapter that carries bytes as latin1 strings (see compose.py, adapter.py)."""
