"""rr's trace format: a header, the recorded host calls in order, and how the run ended.

Two encodings with identical content, converted losslessly: CBOR sequence (compact, the
default for recordings, each record sealed by a CRC-32 chain: cbor.py) and JSON Lines (for
people: text as text, no checksums, hand edits honoured: jsonl.py); either may be gzipped.
Readers detect the encoding from the content, read hostile input within fixed bounds
(records.MAX_RECORD, values.MAX_DEPTH / MAX_INT_BITS) and fail only with TraceError; a trace
cut short reads as incomplete, with the reason. Pure Python: depends on cbor2 only.
"""

from .errors import TraceError, TraceExistsError, TraceNameError, TraceNotFoundError, TraceOutputError
from .model import ComponentInfo, Event, Header, Outcome, Trace
from .reader import TraceReader, iter_records, open_trace, read_trace
from .tools import Summary, convert, summarize
from .values import from_jsonable, to_jsonable
from .versions import CURRENT_VERSION, FORMAT_NAME
from .writer import TraceWriter, format_for

__all__ = [
    "CURRENT_VERSION", "FORMAT_NAME", "ComponentInfo", "Event", "Header", "Outcome", "Summary",
    "Trace", "TraceError", "TraceExistsError", "TraceNameError", "TraceNotFoundError",
    "TraceOutputError", "TraceReader", "TraceWriter", "convert",
    "format_for", "from_jsonable", "iter_records", "open_trace", "read_trace", "summarize",
    "to_jsonable",
]
