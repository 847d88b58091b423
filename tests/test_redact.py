"""Redaction: secrets never reach the trace or its exports, and a redacted recording replays.

Real `python -m rr` subprocesses, the real embedded mitmproxy and a real loopback server that
sees the secrets the guest sends (the upstream must get them; only the recording loses them).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import guests
from httpservers import PLAIN_BODY, TestServer
from rr.errors import EXIT_DIVERGED, EXIT_USAGE
from rr.redact import DEFAULT_HEADERS, MARKER, Redaction

pytestmark = pytest.mark.timeout(300)

SECRET = b"s3cret"
GUEST = guests.C_BIN / "http_headers.wasm"
# base64("rr:"): how every Proxy-Authorization value of rr's own gate begins
GATE_SECRET_PREFIX = b"cnI6"


def rr(*args: str, stdin: bytes = b"") -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], input=stdin, capture_output=True, timeout=120,
                          cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with TestServer() as s:
        yield s


def grant(server: TestServer) -> tuple[str, str]:
    return ("--allow-http", f"127.0.0.1:{server.port}")


def outputs(tmp: Path, trace: Path) -> dict[str, bytes]:
    """Every form the recording takes: the trace, its JSON Lines, HAR, .mitm and rr inspect."""
    assert rr("convert", str(trace), str(tmp / "t.jsonl")).status == 0
    assert rr("har", str(trace), "-o", str(tmp / "t.har")).status == 0
    assert rr("flows", str(trace), "-o", str(tmp / "t.mitm")).status == 0
    shown = rr("inspect", str(trace), "--body-limit", "0")
    as_json = rr("inspect", str(trace), "--json")
    assert shown.status == 0 and as_json.status == 0
    return {"cbor": trace.read_bytes(), "jsonl": (tmp / "t.jsonl").read_bytes(), "har": (tmp / "t.har").read_bytes(),
            "mitm": (tmp / "t.mitm").read_bytes(), "inspect": shown.stdout, "inspect --json": as_json.stdout}


def test_authorization_and_query_secret_never_recorded_and_replay_passes(server: TestServer, tmp_path: Path) -> None:
    """The token comes from the environment, as in CI, and goes out as `Authorization: Bearer`
    and as `?api_key=`: the env, the header (a default) and the query parameter are redacted."""
    trace = tmp_path / "t.cbor"
    rec = rr("record", str(GUEST), "-t", str(trace), *grant(server), "--env", "TOKEN=s3cret", "--env", "OTHER=kept",
             "--redact-env", "TOKEN", "--redact-query", "api_key", "--dump", "--",
             server.url("/plain") + "?page=2&api_key=$TOKEN", "Authorization=Bearer $TOKEN")
    assert rec.status == 0, rec.err
    # The upstream got the real request: redaction is of the recording only.
    method, path, headers, _ = server.requests[-1]
    assert path == "/plain?page=2&api_key=s3cret"
    assert ("authorization", "Bearer s3cret") in [(k.lower(), v) for k, v in headers]
    assert SECRET not in rec.stderr and f"api_key={MARKER}".encode() in rec.stderr   # the --dump line

    forms = outputs(tmp_path, trace)
    for name, data in forms.items():
        assert SECRET not in data, f"the secret is in the {name} output"
        assert GATE_SECRET_PREFIX not in data, f"rr's own proxy secret is in the {name} output"
    flows = [json.loads(line) for line in forms["inspect --json"].splitlines() if b'"http"' in line]
    assert len(flows) == 1
    sent = [name.lower() for name, _ in flows[0]["http"]["request"]["headers"]]
    assert "authorization" in sent and "proxy-authorization" not in sent
    assert MARKER.encode() in forms["jsonl"] and b"kept" in forms["jsonl"]
    assert f"page=2&api_key={MARKER}".encode() in forms["inspect"]
    assert f"authorization: Bearer {MARKER}".encode() not in forms["inspect"]   # the whole value goes
    assert f"> authorization: {MARKER}\n".encode() in forms["inspect"]
    assert f"TOKEN={MARKER}".encode() in forms["inspect"]

    # The replayed guest gets the marker as TOKEN, sends it, and matches the redacted recording.
    replayed = rr("replay", str(GUEST), str(trace))
    assert replayed.status == 0, replayed.err
    assert replayed.stdout == rec.stdout and PLAIN_BODY in replayed.stdout


def test_body_regex_in_a_request_body(server: TestServer, tmp_path: Path) -> None:
    """A request body (POST) redacted by a regex group (gzip bodies: test_redactor_rules)."""
    trace = tmp_path / "t.cbor"
    post = guests.C_BIN / "http_post.wasm"
    body = b"user=ann&password=s3cret&keep=1"
    rec = rr("record", str(post), "-t", str(trace), *grant(server), "--redact-body", "password=([^&]*)",
             "--", server.url("/plain"), stdin=body)
    assert rec.status == 0, rec.err
    assert server.requests[-1][3] == body
    jsonl = outputs(tmp_path, trace)["jsonl"]
    assert f"password={MARKER}&keep=1".encode() in jsonl
    replayed = rr("replay", str(post), str(trace))
    assert replayed.status == 0, replayed.err and replayed.stdout == rec.stdout


def test_no_default_redaction_records_the_header_and_still_replays(server: TestServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    rec = rr("record", str(GUEST), "-t", str(trace), *grant(server), "--no-default-redaction", "--",
             server.url("/plain"), "Authorization=Bearer s3cret")
    assert rec.status == 0, rec.err
    assert b"Bearer s3cret" in trace.read_bytes()
    assert rr("replay", str(GUEST), str(trace)).status == 0


def test_bad_regex_is_a_usage_error_before_anything_is_written(tmp_path: Path) -> None:
    trace = tmp_path / "t.cbor"
    ran = rr("record", str(GUEST), "-t", str(trace), "--redact-body", "(unclosed", "--", "http://127.0.0.1:1/")
    assert ran.status == EXIT_USAGE
    assert ran.err.count("\n") == 1 and ran.err.startswith("rr: --redact-body '(unclosed': not a regular expression")
    assert not trace.exists()


# ------------------------------------------------------------- the rules on flow records

def test_redactor_rules() -> None:
    from proxy_addon.redaction import Redactor

    rules = Redaction(headers=("X-Custom",), query=("key", "a b"), body=(r"pw=(\w+)&tok=(\w+)", "whole"),
                      defaults=True).rules()
    assert rules["headers"] == sorted(h.lower() for h in (*DEFAULT_HEADERS, "X-Custom"))
    r = Redactor(rules)
    assert r.url("http://h/p?key=1&other=2&a+b=3&keyx=4#f") == f"http://h/p?key={MARKER}&other=2&a+b={MARKER}&keyx=4#f"
    assert r.url("http://h/p") == "http://h/p"
    plain = b"pw=abc&tok=def and whole thing"
    body = gzip.compress(plain, mtime=0)
    fields = [[b"Content-Encoding", b"gzip"], [b"Content-Length", str(len(body)).encode()], [b"COOKIE", b"c=1"]]
    new_body, new_fields = r.body(body, r.headers(fields))
    assert gzip.decompress(new_body) == f"pw={MARKER}&tok={MARKER} and {MARKER} thing".encode()
    assert new_fields == [[b"Content-Encoding", b"gzip"], [b"Content-Length", str(len(new_body)).encode()],
                          [b"COOKIE", MARKER.encode()]]
    unchanged = [[b"content-length", b"3"]]
    assert r.body(b"abc", unchanged) == (b"abc", unchanged)
    assert Redaction(defaults=False).rules()["headers"] == []


def test_defaults_are_the_ones_help_and_readme_show() -> None:
    """rr/redact.py is the one place: `rr record --help` is rendered from it, README must agree."""
    shown = " ".join(rr("record", "--help").out.split())
    assert f"replaced by {MARKER}" in shown and f"the headers {', '.join(DEFAULT_HEADERS)}" in shown
    readme = (guests.REPO / "README.md").read_text()
    section = readme[readme.index("### Redaction"):readme.index("### Output checks")]
    listed = ", ".join(f"`{h}`" for h in DEFAULT_HEADERS[:-1]) + f" and `{DEFAULT_HEADERS[-1]}`"
    assert listed in " ".join(section.split()) and f"`{MARKER}`" in section


def test_a_redacted_response_header_reaches_the_replayed_guest_as_the_marker(server: TestServer, tmp_path: Path) -> None:
    """The server sets a cookie and the guest prints its response headers. The trace holds the
    marker, so the replayed guest prints the marker and the output check shows it. With
    --record-output the guest's stdout holds the secret: it is recorded as digests only."""
    trace = tmp_path / "t.cbor"
    rec = rr("record", str(GUEST), "-t", str(trace), *grant(server), "--record-output", "--",
             server.url("/cookie"))
    assert rec.status == 0, rec.err
    assert b"header set-cookie: session=s3cret; HttpOnly\n" in rec.stdout
    assert "rr: note: --record-output: stdout holds a redacted value: recorded as digests only" in rec.err
    for name, data in outputs(tmp_path, trace).items():
        assert SECRET not in data, f"the secret is in the {name} output"
    replayed = rr("replay", str(GUEST), str(trace))
    assert replayed.status == EXIT_DIVERGED
    assert f"header set-cookie: {MARKER}\n".encode() in replayed.stdout
    assert "the guest's stdout differs from the recording within bytes 0-" in replayed.err
