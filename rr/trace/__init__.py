"""rr's trace format: a header, the recorded host calls in order, and how the run ended.

Two encodings with identical content, converted losslessly: CBOR sequence (compact, the
default for recordings) and JSON Lines (readable); either may be gzipped. Readers detect the
encoding from the content. Pure Python: depends on cbor2 only.
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
