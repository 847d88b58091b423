"""rr's pytest plugin under pytest's own pytester: record modes, a missing trace, the marker,
HTTP through a real loopback server recorded once and replayed with the server gone, a corpus
collected with --rr-traces, and xdist with two workers.

Inner sessions run in this process (`runpytest`) where they can, sharing its compiled guests;
only the xdist ones start processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import guests
from httpservers import PLAIN_BODY, TestServer

import rr

pytest_plugins = ["pytester"]

CLOCK_TEST = """
def test_clock(rr_component):
    result = rr_component("clock.wasm", args=["1"], trace="traces/clock.cbor")
    assert result.exit_status == 0 and result.stdout.startswith(b"wall ")
    assert result.trace.name == "clock.cbor"
"""


@pytest.fixture(scope="module", autouse=True)
def imported(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Everything a run imports, imported here first: an inner session run in this process
    removes the modules it imported when it ends, and the next one would mix fresh copies of
    wasmtime's ctypes types with rr's objects made from the old ones."""
    import rr.pytest_plugin  # noqa: F401

    work = tmp_path_factory.mktemp("imports")
    with TestServer() as server:
        url = server.url("/plain")
        rr.record(guests.c_guest("http_get"), work / "t.cbor", [url], allow_http=[url.split("/")[2]])
    assert rr.replay(guests.c_guest("http_get"), work / "t.cbor").exit_status == 0


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    for name in ("clock", "random", "http_get"):
        shutil.copy(guests.c_guest(name), pytester.path / f"{name}.wasm")
    return pytester


def _bytes(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_record_modes_none_once_all_and_a_missing_trace(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_app=CLOCK_TEST)
    trace = suite.path / "traces" / "clock.cbor"

    missing = suite.runpytest()            # none is the default: replay only
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*rr: traces/clock.cbor: no such trace (record mode none replays only); "
                                  "record it with `pytest --rr-record-mode=once test_app.py::test_clock`*"])
    assert not trace.exists()

    suite.runpytest("--rr-record-mode=once").assert_outcomes(passed=1)   # records what is missing
    recorded = _bytes(trace)
    assert recorded is not None
    suite.runpytest("--rr-record-mode=once").assert_outcomes(passed=1)   # replays what is there
    suite.runpytest().assert_outcomes(passed=1)
    assert _bytes(trace) == recorded
    suite.runpytest("--rr-record-mode=all").assert_outcomes(passed=1)    # records again
    assert _bytes(trace) not in (None, recorded)

    # The test now asks for another run than the one recorded: replaying it would pass on stale data.
    suite.makepyfile(test_app=CLOCK_TEST.replace('args=["1"]', 'args=["2"]'))
    stale = suite.runpytest()
    stale.assert_outcomes(failed=1)
    assert ("rr: traces/clock.cbor was recorded with other arguments (['1'], the test asks for ['2']): "
            "record it again with --rr-record-mode=all") in stale.stdout.str()
    # Another build of the component: the replay says so, and how to take the change.
    shutil.copy(suite.path / "random.wasm", suite.path / "clock.wasm")
    suite.makepyfile(test_app=CLOCK_TEST)
    rebuilt = suite.runpytest()
    rebuilt.assert_outcomes(failed=1)
    rebuilt.stdout.fnmatch_lines(["*rr: replay of traces/clock.cbor failed (status 122): *recorded with a "
                                  "different component*", "*record it again with --rr-record-mode=all*"])


def test_marker_defaults_rewrite_redaction_and_http_replayed_offline(suite: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    suite.makepyfile(test_marked="""
import os
import pytest

pytestmark = pytest.mark.rr(trace_dir="recorded", record_mode="once")

def test_random(rr_component):
    first = rr_component("random.wasm")
    second = rr_component("random.wasm")
    assert first.stdout != second.stdout          # two calls, two traces
    assert [first.trace.name, second.trace.name] == ["test_random.cbor", "test_random-2.cbor"]

def test_http(rr_component):
    url = os.environ["RR_TEST_URL"]
    result = rr_component("http_get.wasm", args=[url], allow_http=[url.split("/")[2]], trace="get.cbor")
    assert result.exit_status == 0
    assert result.stdout.endswith(os.environ["RR_TEST_BODY"].encode())

def test_secret(rr_component):   # the trace holds the marker: its replay still matches the test
    import rr
    result = rr_component("random.wasm", env={"TOKEN": "s3cret"}, redaction=rr.Redaction(env=("TOKEN",)))
    assert result.exit_status == 0 and b"s3cret" not in result.trace.read_bytes()
""")
    recorded = suite.path / "recorded"
    recorded.mkdir()
    (recorded / "stale.cbor").write_bytes(b"left by a test that is gone")
    with TestServer() as server:
        monkeypatch.setenv("RR_TEST_URL", server.url("/plain"))
        monkeypatch.setenv("RR_TEST_BODY", PLAIN_BODY.decode())
        suite.runpytest().assert_outcomes(passed=3)   # the marker's mode: once
        assert len(server.requests) == 1
    assert sorted(p.name for p in recorded.iterdir()) == ["get.cbor", "stale.cbor", "test_random-2.cbor",
                                                          "test_random.cbor", "test_secret.cbor"]
    traces = {p.name: p.read_bytes() for p in recorded.iterdir()}
    # The server is gone: the replay is served from the trace. The command line wins over the marker.
    suite.runpytest("--rr-record-mode=none").assert_outcomes(passed=3)
    assert {p.name: p.read_bytes() for p in recorded.iterdir()} == traces

    # rewrite: every trace recorded again (the HTTP test is deselected: a session that did not run
    # every test does not know which traces are unused, so nothing is removed)...
    kept = suite.runpytest("--rr-record-mode=rewrite", "-k", "random")
    kept.assert_outcomes(passed=1, deselected=2)
    assert (recorded / "stale.cbor").exists() and (recorded / "get.cbor").exists()
    assert (recorded / "test_random.cbor").read_bytes() != traces["test_random.cbor"]
    # ...and a whole session removes the traces no test used
    with TestServer() as server:
        monkeypatch.setenv("RR_TEST_URL", server.url("/plain"))
        suite.makepyfile(test_marked=(suite.path / "test_marked.py").read_text().replace(
            'os.environ["RR_TEST_URL"]', repr(server.url("/plain"))))
        whole = suite.runpytest("--rr-record-mode=rewrite")
    whole.assert_outcomes(passed=3)
    whole.stdout.fnmatch_lines(["rr: --rr-record-mode=rewrite removed 1 traces no test used: recorded/stale.cbor"])
    assert sorted(p.name for p in recorded.iterdir()) == ["get.cbor", "test_random-2.cbor", "test_random.cbor",
                                                          "test_secret.cbor"]


@pytest.fixture
def corpus(suite: pytest.Pytester) -> Path:
    """traces/: three good traces (one component beside them, one under components/), one trace
    whose component is nowhere, one corrupt trace."""
    traces, components = suite.path / "traces", suite.path / "components"
    traces.mkdir()
    components.mkdir()
    shutil.move(suite.path / "random.wasm", traces / "random.wasm")
    shutil.move(suite.path / "clock.wasm", components / "clock-build-7.wasm")
    for i in range(2):
        rr.record(traces / "random.wasm", traces / f"random-{i}.cbor")
    rr.record(components / "clock-build-7.wasm", traces / "clock.jsonl", ["1"])
    rr.record(suite.path / "http_get.wasm", traces / "orphan.cbor", ["http://127.0.0.1:1/"])
    broken = (traces / "random-0.cbor").read_bytes()
    (traces / "corrupt.cbor").write_bytes(broken[:-12] + bytes(b ^ 0xFF for b in broken[-12:]))
    return traces


def test_a_corpus_of_traces_is_a_test_per_trace(suite: pytest.Pytester, corpus: Path) -> None:
    result = suite.runpytest("--rr-traces", "traces", "--rr-components", "components")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines_random([   # one line per trace
        "traces/clock.jsonl .*", "traces/corrupt.cbor F*", "traces/orphan.cbor F*",
        "traces/random-0.cbor .*", "traces/random-1.cbor .*"])
    result.stdout.fnmatch_lines_random([
        "rr: traces/orphan.cbor: no component with sha256 * (http_get.wasm) next to it or under "
        "--rr-components components",
        "rr: traces/corrupt.cbor: *corrupt record*"])
    # without --rr-components the clock trace's component is not found
    suite.runpytest("--rr-traces", "traces", "-k", "clock").assert_outcomes(failed=1)


def test_xdist_two_workers_replay_a_corpus_and_rewrite_sees_every_workers_traces(
        suite: pytest.Pytester, corpus: Path) -> None:
    pytest.importorskip("xdist")
    for bad in ("orphan.cbor", "corrupt.cbor"):
        (corpus / bad).unlink()
    replayed = suite.runpytest_subprocess("-n", "2", "--rr-traces", "traces", "--rr-components", "components")
    replayed.assert_outcomes(passed=3)
    replayed.stdout.fnmatch_lines(["*2 workers*"])

    # Each worker records the traces of its own tests; the controller removes only the traces
    # that no worker used.
    shutil.move(corpus / "random.wasm", suite.path / "random.wasm")
    suite.makepyfile(**{f"test_w{i}": f"""
def test_w{i}(rr_component):
    assert rr_component("random.wasm", trace="traces/random-{i}.cbor").exit_status == 0
""" for i in range(2)})
    (corpus / "clock.jsonl").rename(corpus / "unused.jsonl")
    rewritten = suite.runpytest_subprocess("-n", "2", "--rr-record-mode=rewrite")
    rewritten.assert_outcomes(passed=2)
    rewritten.stdout.fnmatch_lines(["rr: --rr-record-mode=rewrite removed 1 traces no test used: traces/unused.jsonl"])
    assert sorted(p.name for p in corpus.iterdir()) == ["random-0.cbor", "random-1.cbor"]


def test_the_readme_shows_the_example_it_runs() -> None:
    readme = (guests.REPO / "README.md").read_text()
    example = (guests.REPO / "examples" / "pytest" / "test_app.py").read_text()
    assert f"```python\n{example}```\n" in readme
