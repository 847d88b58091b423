"""rr's mitmproxy addons: record the guest's outgoing HTTP as flow records, replay it from them.

The addons know HTTP and flows only; rr.proxy embeds them in a mitmproxy instance.
Importing this package imports mitmproxy (~0.8 s): import it only where the proxy is needed.
"""

from .errors import HEADER_ERROR, HEADER_ERROR_MESSAGE, HEADER_FLOW, HEADER_MISMATCH, KINDS
from .flowrecord import FlowRecord, flow_to_record, record_to_flow
from .record import RecordAddon
from .replay import ReplayAddon

__all__ = [
    "HEADER_ERROR",
    "HEADER_ERROR_MESSAGE",
    "HEADER_FLOW",
    "HEADER_MISMATCH",
    "KINDS",
    "FlowRecord",
    "RecordAddon",
    "ReplayAddon",
    "flow_to_record",
    "record_to_flow",
]
