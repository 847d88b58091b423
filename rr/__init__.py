"""rr: record and replay WASI 0.2 command components."""

__version__ = "0.1.0"
