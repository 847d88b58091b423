"""Redaction: which secrets a recording leaves out, and the marker that stands in for them.

The one place for the rules: the marker, the headers redacted by default, the options of
`rr record` (their `--help` text is rendered from here) and the trace header field that
carries the rules to the replay. The mechanics on HTTP flow records are proxy_addon's
(proxy_addon/redaction.py, which takes the rules as plain data); the environment is redacted
here, in the header and in the guest's get-environment events.

What the guest gets on replay is what the trace holds: the marker in place of a redacted
environment variable or response header. A redacted request header, query parameter or body
match is redacted in the live request too before it is compared, so the replay matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # the parser imports this module: keep rr's start-up free of the codec
    from .trace import Event, Header

MARKER = "[REDACTED]"
# vcrpy redacts none by default and misses Set-Cookie; these carry credentials in most APIs.
DEFAULT_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key")
HEADER_FIELD = "redact"   # trace header extra: the rules the recording applied
_ENV_CALL = "wasi:cli/environment.get-environment"


class BadRedaction(ValueError):
    """An option that cannot be a rule (an empty name, a regex that does not compile)."""


@dataclass(frozen=True)
class Redaction:
    """The redaction options of a recording (`rr record --redact-*`, or the Python API)."""

    headers: tuple[str, ...] = ()   # header names (any case), request and response: the value
    query: tuple[str, ...] = ()     # URL query parameter names: the value
    env: tuple[str, ...] = ()       # guest environment variable names: the value
    body: tuple[str, ...] = ()      # regexes over request and response bodies: each group, else the match
    defaults: bool = True           # also DEFAULT_HEADERS

    def rules(self) -> dict[str, Any]:
        """Plain data for the trace header and the proxy; BadRedaction for an unusable option."""
        for kind, names in (("header", self.headers), ("query parameter", self.query), ("env", self.env)):
            for name in names:
                if not name or any(c in name for c in "\r\n"):
                    raise BadRedaction(f"--redact-{kind.split()[0]}: {name!r} is not a name")
        for pattern in self.body:
            try:
                re.compile(pattern.encode("utf-8"))
            except re.error as e:
                raise BadRedaction(f"--redact-body {pattern!r}: not a regular expression: {e}") from None
        headers = [*(DEFAULT_HEADERS if self.defaults else ()), *self.headers]
        return {"marker": MARKER,
                "headers": sorted({h.lower() for h in headers}),
                "query": list(dict.fromkeys(self.query)),
                "env": list(dict.fromkeys(self.env)),
                "body": list(dict.fromkeys(self.body))}


def add_flags(parser: Any) -> None:
    """The `rr record` options (an argparse parser or group)."""
    import textwrap
    g = parser.add_argument_group("redaction", textwrap.fill(
        f"values replaced by {MARKER} in the trace (and so in rr inspect, HAR and .mitm); redacted by "
        f"default: the headers {', '.join(DEFAULT_HEADERS)}", 78, initial_indent="  ", subsequent_indent="  "))
    g.add_argument("--redact-header", action="append", default=[], metavar="NAME",
                   help="redact this HTTP header's value, in requests and responses (repeatable)")
    g.add_argument("--redact-query", action="append", default=[], metavar="NAME",
                   help="redact this URL query parameter's value (repeatable)")
    g.add_argument("--redact-env", action="append", default=[], metavar="NAME",
                   help="redact this environment variable's value: the replayed guest sees the marker (repeatable)")
    g.add_argument("--redact-body", action="append", default=[], metavar="REGEX",
                   help="redact what this regex matches in HTTP bodies (its groups, if it has any; repeatable)")
    g.add_argument("--no-default-redaction", action="store_true",
                   help=f"do not redact {', '.join(DEFAULT_HEADERS)} unless named")


def from_args(args: Any) -> Redaction:
    return Redaction(headers=tuple(args.redact_header), query=tuple(args.redact_query),
                     env=tuple(args.redact_env), body=tuple(args.redact_body),
                     defaults=not args.no_default_redaction)


def recorded_rules(header: Header) -> dict[str, Any] | None:
    """The rules a trace was recorded with (None: recorded before redaction existed)."""
    rules = header.extra.get(HEADER_FIELD)
    if rules is None:
        return None
    if (type(rules) is not dict or type(rules.get("marker")) is not str
            or not all(type(rules.get(k, [])) is list and all(type(x) is str for x in rules.get(k, []))
                       for k in ("headers", "query", "env", "body"))):
        raise BadRedaction(f"header field {HEADER_FIELD!r} is not a set of redaction rules")
    return rules


def describe(rules: Any) -> str:
    """The recorded rules in one line (`rr inspect`)."""
    try:
        parts = [f"{kind} {', '.join(rules[kind])}" for kind in ("headers", "query", "env", "body") if rules.get(kind)]
        return f"{'; '.join(parts) or 'nothing'} (marker {rules['marker']})"
    except (TypeError, KeyError, AttributeError):
        import json
        return json.dumps(str(rules))


def env(pairs: list[tuple[str, str]], rules: dict[str, Any]) -> list[tuple[str, str]]:
    names = set(rules.get("env", ()))
    return [(k, rules["marker"] if k in names else v) for k, v in pairs]


class EnvRedactingWriter:
    """Between the Recorder and the trace: the guest gets its real environment, the trace the
    marker for each redacted variable."""

    def __init__(self, writer: Any, rules: dict[str, Any]) -> None:
        self._writer = writer
        self._rules = rules

    def write_event(self, event: Event) -> None:
        if event.call == _ENV_CALL and not event.failed and type(event.result) is list:
            from .trace import Event
            event = Event(event.call, event.args, [list(p) for p in env([tuple(p) for p in event.result],
                                                                         self._rules)])
        self._writer.write_event(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)
