"""rr's trace format: a header, the recorded host calls in order, and how the run ended.

Two encodings with identical content, converted losslessly: CBOR sequence (compact, the
default for recordings, each record sealed by a CRC-32 chain: cbor.py) and JSON Lines (for
people: text as text, no checksums, hand edits honoured: jsonl.py); either may be gzipped.
Readers detect the encoding from the content, read hostile input within fixed bounds
(records.MAX_RECORD, values.MAX_DEPTH / MAX_INT_BITS) and fail only with TraceError; a trace
cut short reads as incomplete, with the reason. Pure Python: depends on cbor2 only.
"""

# Each name is imported from its submodule on first use (PEP 562): `rr run` needs only the
# event model, `rr record` the writer; none of them should pay for the reader, the JSON
# codec or the tools at start-up.
_SUBMODULE = {
    "TraceError": "errors", "TraceExistsError": "errors", "TraceNameError": "errors",
    "TraceNotFoundError": "errors", "TraceOutputError": "errors",
    "ComponentInfo": "model", "Event": "model", "Header": "model", "Outcome": "model", "Trace": "model",
    "TraceReader": "reader", "iter_records": "reader", "open_trace": "reader", "read_trace": "reader",
    "Summary": "tools", "convert": "tools", "summarize": "tools",
    "from_jsonable": "values", "to_jsonable": "values",
    "CURRENT_VERSION": "versions", "FORMAT_NAME": "versions",
    "TraceWriter": "writer", "format_for": "writer",
}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module 'rr.trace' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CURRENT_VERSION", "FORMAT_NAME", "ComponentInfo", "Event", "Header", "Outcome", "Summary",
    "Trace", "TraceError", "TraceExistsError", "TraceNameError", "TraceNotFoundError",
    "TraceOutputError", "TraceReader", "TraceWriter", "convert",
    "format_for", "from_jsonable", "iter_records", "open_trace", "read_trace", "summarize",
    "to_jsonable",
]
