"""rr: record and replay WASI 0.2 command components.

The Python API (rr/api.py): `rr.run`, `rr.record`, `rr.replay` return an `rr.Result`;
`rr.RRError` is what they raise for a mistake that stops a run before the guest starts;
`rr.Redaction` is what `rr.record(redaction=...)` leaves out of a trace.
"""

__version__ = "0.1.0"

_API = ("run", "record", "replay", "Result", "load")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Imported on first use: `rr` is also the CLI's package, whose start-up must not pay for it.
    if name in _API:
        from . import api
        return getattr(api, name)
    if name == "RRError":
        from .errors import RRError
        return RRError
    if name == "Redaction":   # what rr.record(redaction=...) takes
        from .redact import Redaction
        return Redaction
    raise AttributeError(f"module 'rr' has no attribute {name!r}")


__all__ = ["RRError", "Redaction", "Result", "__version__", "load", "record", "replay", "run"]
