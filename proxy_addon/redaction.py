"""Redaction of flow records: secrets replaced by a marker before a record is written or compared.

The rules are plain data (rr/redact.py decides them and stores them in the trace header):

    {"marker": "[REDACTED]",
     "headers": ["authorization", ...],   # header names, lower case: the whole value
     "query": ["api_key", ...],           # query parameter names: the value
     "body": ["token=([^&]*)", ...]}      # regexes over bodies: each group, or the whole match

Recording redacts each finished record (both requests, the response); replay redacts the live
request with the same rules before comparing it with the recorded one, so a recording whose
secrets are gone still matches. A body is searched decoded (gzip, br, ...) and re-encoded when
a match changed it; its content-length follows the new size, so the record stays servable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

Rules = dict[str, Any]


class Redactor:
    """Compiled rules; `request()` and `record()` return redacted copies (inputs untouched)."""

    def __init__(self, rules: Rules) -> None:
        self.marker = str(rules["marker"])
        self._marker = self.marker.encode("latin-1")
        self._headers = frozenset(h.lower().encode("latin-1") for h in rules.get("headers", ()))
        self._query = frozenset(rules.get("query", ()))
        self._body = [re.compile(p.encode("utf-8")) for p in rules.get("body", ())]
        # The values taken out, so that what else the recording keeps (the guest's output with
        # --record-output) can be checked for them. Bounded by the exchanges of one run.
        self.replaced: set[bytes] = set()

    def headers(self, fields: Iterable[list[bytes]]) -> list[list[bytes]]:
        out = []
        for name, value in fields:
            if bytes(name).lower() in self._headers:
                self.replaced.add(bytes(value))
                value = self._marker
            out.append([bytes(name), bytes(value)])
        return out

    def url(self, url: str) -> str:
        if not self._query:
            return url
        parts = urlsplit(url)
        if not parts.query:
            return url
        pairs = []
        for pair in parts.query.split("&"):
            name, eq, value = pair.partition("=")
            if unquote_plus(name) in self._query:
                self.replaced.add(unquote_plus(value).encode("utf-8", "surrogateescape"))
                pair = f"{name}={self.marker}"
            pairs.append(pair)
        return urlunsplit(parts._replace(query="&".join(pairs)))

    def body(self, body: bytes, fields: list[list[bytes]]) -> tuple[bytes, list[list[bytes]]]:
        """The body with every match replaced, and the headers with content-length following it."""
        if not self._body or not body:
            return body, fields
        coding = next((bytes(v).decode("latin-1").strip() for n, v in fields
                       if bytes(n).lower() == b"content-encoding"), "")
        from mitmproxy.net import encoding

        try:
            plain = encoding.decode(body, coding) if coding else body
        except ValueError:
            plain = body   # not decodable as it claims: searched as it is
            coding = ""
        redacted = plain
        for pattern in self._body:
            redacted = pattern.sub(self._replace, redacted)
        if redacted == plain:
            return body, fields
        new_body = encoding.encode(redacted, coding) if coding else redacted
        length = str(len(new_body)).encode()
        return new_body, [[n, length if bytes(n).lower() == b"content-length" else v] for n, v in fields]

    def _replace(self, match: re.Match[bytes]) -> bytes:
        if not match.re.groups:
            self.replaced.add(match.group(0))
            return self._marker
        text, start = match.group(0), match.start(0)
        out, at = [], 0
        for g in range(1, match.re.groups + 1):
            s, e = match.span(g)
            if s < 0 or s - start < at:
                continue   # a group that did not take part, or nested inside one already replaced
            self.replaced.add(match.group(g))
            out += [text[at:s - start], self._marker]
            at = e - start
        return b"".join(out) + text[at:]

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        body, fields = self.body(bytes(req["body"]), self.headers(req["headers"]))
        return {**req, "url": self.url(req["url"]), "headers": fields, "body": body}

    def record(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {**rec, "request": self.request(rec["request"])}
        if rec.get("guest_request") is not None:
            out["guest_request"] = self.request(rec["guest_request"])
        if rec.get("response") is not None:
            resp = rec["response"]
            body, fields = self.body(bytes(resp["body"]), self.headers(resp["headers"]))
            out["response"] = {**resp, "headers": fields, "body": body}
        return out
