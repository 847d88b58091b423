"""wasi:filesystem under rr: same effects as `wasmtime run --dir`, no way out of a preopen,
read-only grants enforced, and record/replay reproducing the guest's view without the disk.

Guests: tests/guests/c/fs_ops.c (a fixed sequence of file operations),
tests/guests/c/fs_escape.c (attempts to leave its preopen) and tests/guests/c/fs_slashes.c
(paths ending in "/"). Real files in tmp_path.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import guests
from rr.abi import WasiError
from rr.host.filesystem.errors import error_code
from rr.host.filesystem.sandbox_paths import FOLLOW, ITSELF, STRIP, beneath

IN_TXT = b"line one\nline two\n"


def snapshot(root: Path) -> dict[str, object]:
    """Everything a guest could have changed under root: kinds, contents, link targets."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", path.read_bytes())
    return out


def fs_ops_tree(root: Path) -> Path:
    (root / "g").mkdir(parents=True)
    (root / "g" / "in.txt").write_bytes(IN_TXT)
    return root / "g"


def escape_tree(root: Path) -> Path:
    """A preopen g/ with traps in it, and a secret next to it (outside the grant)."""
    g = root / "g"
    (g / "sub").mkdir(parents=True)
    (g / "inside.txt").write_text("inside\n")
    (root / "secret.txt").write_text("secret\n")
    (g / "etc_link").symlink_to("/etc")
    (g / "up").symlink_to("..")
    (g / "loop1").symlink_to("loop2")
    (g / "loop2").symlink_to("loop1")
    return g


# --------------------------------------------------------------------------- rr run vs wasmtime run


# fs_ops_py: the same program through componentize-py (CPython's wasip2 libc, no adapter).
@pytest.mark.parametrize("guest", ["fs_ops", "fs_ops_py"])
@pytest.mark.parametrize("runs", [1, 2], ids=["fresh", "second-run-eexist"])
def test_fs_ops_effects_match_wasmtime(tmp_path: Path, wasmtime_bin: Path, runs: int, guest: str) -> None:
    ours, theirs = fs_ops_tree(tmp_path / "rr"), fs_ops_tree(tmp_path / "wasmtime")
    fs_ops = guests.c_guest(guest)
    for _ in range(runs):
        got = guests.rr_run(fs_ops, "/data", flags=["--dir-rw", f"{ours}::/data"])
        want = guests.wasmtime_run(fs_ops, "/data", flags=["--dir", f"{theirs}::/data"])
        assert got.out == want.out, got.err
        assert got.status == want.status
    assert snapshot(ours) == snapshot(theirs)
    if runs == 1:
        assert "failures 0" in got.out and got.status == 0
        assert snapshot(ours) == {"in.txt": ("file", IN_TXT), "log.txt": ("file", b"fs_ops ran\n"),
                                  "sub": ("dir",), "sub/moved.txt": ("file", IN_TXT)}
    else:
        assert "mkdir sub: EEXIST" in got.out and got.status == 1


# What fs_slashes prints where rr keeps to Linux and wasmtime (cap-std) does not (see
# rr/host/filesystem/sandbox_paths.py): lstat("lf/") with lf -> a file.
SLASHES_LINUX_NOT_WASMTIME = {"stat lf/": "ENOTDIR"}


def _steps(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_trailing_slashes_like_wasmtime(tmp_path: Path, wasmtime_bin: Path) -> None:
    ours, theirs = tmp_path / "rr", tmp_path / "wasmtime"
    ours.mkdir()
    theirs.mkdir()
    fs_slashes = guests.c_guest("fs_slashes")
    got = guests.rr_run(fs_slashes, "/data", flags=["--dir-rw", f"{ours}::/data"])
    want = guests.wasmtime_run(fs_slashes, "/data", flags=["--dir", f"{theirs}::/data"])
    assert got.status == want.status == 0, got.err + want.err
    steps, reference = _steps(got.out), _steps(want.out)
    assert {k: v for k, v in steps.items() if k not in SLASHES_LINUX_NOT_WASMTIME} == \
        {k: v for k, v in reference.items() if k not in SLASHES_LINUX_NOT_WASMTIME}
    for step, answer in SLASHES_LINUX_NOT_WASMTIME.items():
        assert steps[step] == answer, step
    # The rules, spelled out (the wasi-testsuite's path_link and path_symlink_trailing_slashes
    # check the first six; Linux answers the same).
    assert steps["link f new/"] == steps["symlink src new/"] == "ENOENT"
    assert steps["link f d/"] == steps["symlink src d/"] == steps["symlink src ld/"] == "EEXIST"
    assert steps["link f f/"] == steps["symlink src f/"] == steps["link f/ new"] == "ENOTDIR"
    assert steps["link f dangle/"] == steps["symlink src dangle/"] == "ENOENT"
    assert steps["link f new"] == steps["symlink src new"] == steps["rename d/ e/"] == "ok"
    assert steps["rename f g/"] == steps["rename ld/ g"] == steps["rename d ld/"] == "ENOTDIR"
    assert steps["rmdir ld/"] == "EINVAL"          # never the directory the link leads to
    assert steps["mkdir dangle/"] == "EEXIST"      # nor creating a dangling link's target
    assert steps["open missing"] == "ENOENT"
    assert steps["open new/ create"] == steps["open d/ create"] == "EISDIR"
    assert steps["cleanup"] == "ok"
    assert snapshot(ours) == snapshot(theirs) == {}


def test_trailing_slashes_replay_without_disk(tmp_path: Path) -> None:
    tree = tmp_path / "live"
    tree.mkdir()
    trace = tmp_path / "t.cbor"
    fs_slashes = str(guests.c_guest("fs_slashes"))
    recorded = _rr("record", fs_slashes, "-t", str(trace), "--dir-rw", f"{tree}::/data", "--", "/data")
    assert recorded.status == 0 and b"link f d/: EEXIST" in recorded.stdout, recorded.err
    tree.rmdir()
    replayed = _rr("replay", fs_slashes, str(trace))
    assert (replayed.status, replayed.stdout) == (0, recorded.stdout), replayed.err
    assert not tree.exists()


def test_names_not_utf8_are_a_usage_error(tmp_path: Path, wasmtime_bin: Path) -> None:
    bad = os.fsdecode(b"\xff")  # how Python hands over a command-line byte that is not UTF-8
    odd_host = tmp_path / f"host-{bad}"
    odd_host.mkdir()
    fs_ops = guests.c_guest("fs_ops")
    for flags, args, shown in [
        (["--dir", str(odd_host)], ["/data"], f"--dir {tmp_path}/host-\\xff: guest path"),
        (["--dir-rw", f"{tmp_path}::/d{bad}"], ["/data"], f"--dir-rw {tmp_path}::/d\\xff: guest path '/d\\xff'"),
        ([], [f"a{bad}"], "argument 'a\\xff'"),
        (["--env", f"K={bad}"], [], "environment variable 'K=\\xff'"),
    ]:
        ran = guests.rr_run(fs_ops, *args, flags=flags)
        assert ran.status == 125, (flags, args, ran.err)
        assert ran.err.startswith(f"rr: {shown}") and ran.err.count("\n") == 1, ran.err
        assert "not valid UTF-8" in ran.err and "Traceback" not in ran.err
        # The wasmtime CLI refuses the same command line before the guest runs (2 for its
        # options, 1 for the guest's arguments).
        ref = guests.wasmtime_run(fs_ops, *args, flags=["--dir" if f == "--dir-rw" else f for f in flags])
        assert ref.status in (1, 2) and ref.stdout == b"" and "utf-8" in ref.err.lower(), ref.err
    # Only the guest's name has to be UTF-8: a host directory named with other bytes is granted.
    (odd_host / "in.txt").write_bytes(IN_TXT)
    ran = guests.rr_run(fs_ops, "/data", flags=["--dir", f"{odd_host}::/data"])
    assert ran.out.startswith("read in.txt: ok 18 bytes"), ran.err


def test_escape_attempts_refused_like_wasmtime(tmp_path: Path, wasmtime_bin: Path) -> None:
    ours, theirs = escape_tree(tmp_path / "rr"), escape_tree(tmp_path / "wasmtime")
    fs_escape = guests.c_guest("fs_escape")
    got = guests.rr_run(fs_escape, "/data", "write", flags=["--dir-rw", f"{ours}::/data"])
    want = guests.wasmtime_run(fs_escape, "/data", "write", flags=["--dir", f"{theirs}::/data"])
    assert got.out == want.out, got.err
    lines = dict(line.split(": ", 1) for line in got.out.splitlines())
    assert lines["open inside.txt"] == "ok read 7 bytes"
    assert lines["open sub/../inside.txt"] == "ok read 7 bytes"
    for step in ("open ../secret.txt", "open sub/../../secret.txt", "open etc_link/passwd",
                 "open up/secret.txt", "open ..", "open etc_link", "stat etc_link/passwd",
                 "stat ../secret.txt", "readlink etc_link", "create ../created_outside.txt",
                 "create etc_link/rr_created", "mkdir ../newdir", "symlink /etc/passwd abs_link",
                 "rename inside.txt ../moved.txt", "unlink ../secret.txt"):
        assert lines[step] == "EPERM", step
    assert lines["open loop1"] == lines["open loop1/x"] == "ELOOP"
    assert lines["truncate inside.txt"] == "ok"  # --dir-rw: writes inside are fine
    assert snapshot(ours.parent) == snapshot(theirs.parent)
    assert sorted(p.name for p in ours.parent.iterdir()) == ["g", "secret.txt"]


def test_read_only_grant_refuses_writes(tmp_path: Path) -> None:
    g = escape_tree(tmp_path)
    before = snapshot(tmp_path)
    got = guests.rr_run(guests.c_guest("fs_escape"), "/data", "write", flags=["--dir", f"{g}::/data"])
    assert "open inside.txt: ok read 7 bytes" in got.out, got.err
    assert "truncate inside.txt: EPERM" in got.out  # not-permitted, as wasmtime's read-only perms
    assert "mkdir newsub: EPERM" in got.out
    assert snapshot(tmp_path) == before

    tree = fs_ops_tree(tmp_path / "ops")
    before = snapshot(tree)
    ran = guests.rr_run(guests.c_guest("fs_ops"), "/data", flags=["--dir", f"{tree}::/data"])
    assert ran.out.startswith("read in.txt: ok 18 bytes")
    for step in ("write copy.txt", "append log.txt", "mkdir sub", "write sub/a.txt",
                 "rename copy.txt sub/moved.txt", "unlink sub/a.txt"):
        assert f"{step}: EPERM" in ran.out, step
    assert snapshot(tree) == before


def test_no_grant_no_files(tmp_path: Path) -> None:
    ran = guests.rr_run(guests.c_guest("fs_ops"), "/data")
    assert "read in.txt: ENOTCAPABLE" in ran.out and "failures 9" in ran.out, ran.err


# --------------------------------------------------------------------------- path resolution


def _resolve(base: Path, path: str, follow: bool = True, dir_suffix: str = FOLLOW) -> str:
    """Where `beneath` lands, as a path relative to base (or the error-code)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with beneath(fd, path, follow, dir_suffix) as t:
            parent = os.readlink(f"/proc/self/fd/{t.dir_fd}")
            return os.path.relpath(os.path.join(parent, t.name), os.path.realpath(base))
    except WasiError as e:
        return e.payload
    finally:
        os.close(fd)


def test_beneath_confines_paths(tmp_path: Path) -> None:
    g = escape_tree(tmp_path)
    (g / "sub" / "rel").symlink_to("../inside.txt")
    (g / "sub" / "out").symlink_to("../../secret.txt")
    assert _resolve(g, "inside.txt") == "inside.txt"
    assert _resolve(g, "sub/rel") == "inside.txt"          # a symlink that stays inside is followed
    assert _resolve(g, "sub/rel", follow=False) == "sub/rel"
    assert _resolve(g, "up/g/inside.txt") == "not-permitted"  # through ".." of the preopen
    assert _resolve(g, "sub/out") == "not-permitted"
    assert _resolve(g, "sub/out", follow=False) == "sub/out"  # the link itself, e.g. to unlink it
    assert _resolve(g, "/etc/passwd") == "not-permitted"
    assert _resolve(g, "/") == "not-permitted"
    assert _resolve(g, "..") == "not-permitted"
    assert _resolve(g, "sub/../..") == "not-permitted"
    assert _resolve(g, "etc_link/passwd") == "not-permitted"
    assert _resolve(g, "etc_link/", follow=False) == "not-permitted"  # "/" forces following
    assert _resolve(g, "loop1") == "loop"
    assert _resolve(g, "inside.txt/x") == "not-directory"
    assert _resolve(g, "missing/x") == "no-entry"
    assert _resolve(g, "missing") == "missing"             # a name to create
    assert _resolve(g, "sub/..") == "."
    assert _resolve(g, "") == "."


def test_beneath_trailing_slash_modes_stay_confined(tmp_path: Path) -> None:
    g = escape_tree(tmp_path)
    # ITSELF (link, symlink, unlink, rmdir, readlink): the directory itself, reached through
    # symlinks only if they stay inside.
    assert _resolve(g, "sub/", False, ITSELF) == "sub"
    assert _resolve(g, "sub//", False, ITSELF) == "sub"
    assert _resolve(g, "inside.txt/", False, ITSELF) == "not-directory"
    assert _resolve(g, "missing/", False, ITSELF) == "no-entry"
    assert _resolve(g, "etc_link/", False, ITSELF) == "not-permitted"
    assert _resolve(g, "up/", False, ITSELF) == "not-permitted"
    assert _resolve(g, "loop1/", False, ITSELF) == "loop"
    # STRIP (rename, mkdir): the name itself, never followed, wherever the symlink leads.
    assert _resolve(g, "etc_link/", False, STRIP) == "etc_link"
    assert _resolve(g, "up//", False, STRIP) == "up"
    assert _resolve(g, "sub/../inside.txt/", False, STRIP) == "inside.txt"
    assert _resolve(g, "../secret.txt/", False, STRIP) == "not-permitted"


@pytest.mark.parametrize("err, code", [
    (errno.ENOENT, "no-entry"), (errno.EEXIST, "exist"), (errno.ENOTDIR, "not-directory"),
    (errno.EISDIR, "is-directory"), (errno.EACCES, "access"), (errno.EPERM, "not-permitted"),
    (errno.ENOTEMPTY, "not-empty"), (errno.EINVAL, "invalid"), (errno.ELOOP, "loop"),
    (errno.ENAMETOOLONG, "name-too-long"), (errno.EROFS, "read-only"), (errno.EXDEV, "cross-device"),
    (errno.ENOSPC, "insufficient-space"), (errno.EBADF, "bad-descriptor"), (errno.ECHILD, "io"),
])
def test_errno_to_error_code(err: int, code: str) -> None:
    assert error_code(OSError(err, os.strerror(err))) == code


# --------------------------------------------------------------------------- record / replay


def _rr(*args: str) -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, timeout=60,
                          cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def test_replay_needs_no_disk_python_guest(tmp_path: Path) -> None:
    tree = fs_ops_tree(tmp_path / "live")
    trace = tmp_path / "t.cbor"
    fs_ops = str(guests.c_guest("fs_ops_py"))
    recorded = _rr("record", fs_ops, "-t", str(trace), "--dir-rw", f"{tree}::/data", "--", "/data")
    assert recorded.status == 0 and b"failures 0" in recorded.stdout, recorded.err
    os.rename(tree, tmp_path / "moved-away")
    replayed = _rr("replay", fs_ops, str(trace))
    assert replayed.stdout == recorded.stdout and replayed.status == 0, replayed.err
    assert not tree.exists()


def test_replay_needs_no_disk_and_catches_different_writes(tmp_path: Path) -> None:
    tree = fs_ops_tree(tmp_path / "live")
    trace = tmp_path / "t.json"
    fs_ops = str(guests.c_guest("fs_ops"))
    recorded = _rr("record", fs_ops, "-t", str(trace), "-f", "json", "--dir-rw", f"{tree}::/data", "--", "/data")
    assert recorded.status == 0, recorded.err
    after = snapshot(tree)
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    calls = [e.get("call") for e in events]
    assert "wasi:filesystem/types.open-at" in calls and "wasi:filesystem/types.read-directory" in calls
    writes = [e["args"] for e in events if e.get("call") == "wasi:io/streams.write"]
    assert ["file:/data/log.txt", None, {"$utf8": "fs_ops ran\n"}] in writes  # append: no offset

    # The host directory is gone: the replay must take everything from the trace.
    os.rename(tree, tmp_path / "moved-away")
    replayed = _rr("replay", fs_ops, str(trace))
    assert replayed.stdout == recorded.stdout and replayed.status == 0, replayed.err
    assert not tree.exists()
    assert snapshot(tmp_path / "moved-away") == after

    # Another in.txt in the trace makes the guest write other bytes to copy.txt: divergence.
    for e in events:
        if e.get("call") == "wasi:io/streams.blocking-read" and e["args"][0] == "file:/data/in.txt" \
                and isinstance(e.get("result"), dict):
            e["result"] = {"$utf8": "LINE ONE\nLINE TWO\n"}
            break
    else:
        pytest.fail("no read of in.txt in the trace")
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    diverged = _rr("replay", fs_ops, str(trace))
    assert diverged.status == 121, diverged.err
    assert "streams.write" in diverged.err
