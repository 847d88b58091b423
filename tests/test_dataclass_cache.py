"""rr/dataclass_cache.py: dataclasses made with their methods' code from the cache file behave
as dataclasses' own, and a damaged cache file changes nothing but the speed."""

from __future__ import annotations

import dataclasses
import marshal

import pytest

from rr import dataclass_cache


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


OPTIONS = [
    {},
    {"frozen": True},
    {"slots": True},
    {"kw_only": True},
    {"order": True, "unsafe_hash": True},
    {"frozen": True, "slots": True, "kw_only": True},
    {"eq": False, "repr": False},
]


def make(options):
    """A fresh class with the given dataclass options (the same source text each time)."""
    class Point:
        x: int
        y: str = "y"
        tags: list = dataclasses.field(default_factory=list)
        hidden: int = dataclasses.field(default=0, repr=False, compare=False)

        def __post_init__(self):
            self.tags.append("made")

    return dataclasses.dataclass(**options)(Point)


def behaviour(cls, options):
    """What a user can observe of `cls`."""
    kw_only = options.get("kw_only", False)
    a = cls(x=1, y="a") if kw_only else cls(1, "a")
    b = cls(x=1, y="a") if kw_only else cls(1, "a")
    c = cls(x=2) if kw_only else cls(2)
    seen: dict = {
        "repr": repr(a).split(".")[-1] if options.get("repr", True) else None,
        "eq": (a == b, a == c),
        "tags": (a.tags, c.y, a.hidden),
        "fields": [(f.name, f.kw_only, f.repr, f.compare) for f in dataclasses.fields(cls)],
        "slots": (hasattr(cls, "__slots__"), hasattr(a, "__dict__")),
        "match_args": getattr(cls, "__match_args__", None),
    }
    try:
        seen["hash"] = hash(a) == hash(b) if cls.__hash__ is not None else None
    except TypeError as e:   # unsafe_hash over the list field
        seen["hash"] = str(e)
    if options.get("order"):
        seen["order"] = (a < c, c >= a)
    try:
        cls(1, "a")
        seen["positional"] = "ok"
    except TypeError:
        seen["positional"] = "TypeError"
    try:
        a.x = 5
        seen["assign"] = a.x
    except dataclasses.FrozenInstanceError:
        seen["assign"] = "frozen"
    return seen


def in_cache(cls) -> bool:
    """Whether cls.__init__'s code is the one the cache holds (not compiled afresh)."""
    def codes(code):   # the text's own code, `__create_fn__` in it, the method in that
        yield code
        for const in code.co_consts:
            if hasattr(const, "co_consts"):
                yield from codes(const)
    return any(cls.__init__.__code__ is c for scope in dataclass_cache._scopes
               for code in scope.known.values() for c in codes(code))


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_a_class_from_the_cache_behaves_as_dataclasses_own(options):
    plain = behaviour(make(options), options)
    with dataclass_cache.cached():   # fills the file
        first = behaviour(make(options), options)
    assert dataclass_cache.cache_file().is_file()
    with dataclass_cache.cached():   # takes the code from it
        cls = make(options)
        assert in_cache(cls)
        cached = behaviour(cls, options)
    assert plain == first == cached
    assert "exec" not in vars(dataclasses)


@pytest.mark.parametrize("damage", [b"", b"garbage", b"rr-dataclass-code\n\x00\x00\x00\x00" + marshal.dumps({}),
                                    "truncated", "foreign values"])
def test_a_damaged_cache_file_is_ignored_and_replaced(damage):
    with dataclass_cache.cached():
        make({})
    path = dataclass_cache.cache_file()
    good = path.read_bytes()
    if damage == "truncated":
        damage = good[: len(good) // 2]
    elif damage == "foreign values":
        damage = good[: len(dataclass_cache._HEADER)] + marshal.dumps({"def f(): pass": 42, 7: "x"})
    path.write_bytes(damage)
    with dataclass_cache.cached():
        cls = make({"frozen": True})
        assert not in_cache(cls)
        assert behaviour(cls, {"frozen": True}) == behaviour(make({"frozen": True}), {"frozen": True})
    assert dataclass_cache._load(path)   # written again, whole
    assert "exec" not in vars(dataclasses)


def test_nested_scopes_keep_their_own_files_and_exec_is_unchanged_for_other_code():
    with dataclass_cache.cached("outer"):
        make({"frozen": True})
    with dataclass_cache.cached("outer"):
        with dataclass_cache.cached("inner"):
            assert in_cache(make({"frozen": True}))   # found in the outer scope's file
            make({"slots": True})                      # new: goes to the inner one's
            namespace: dict = {}
            dataclass_cache._cached_exec("z = 41 + 1", namespace)
            assert namespace["z"] == 42
        assert vars(dataclasses)["exec"] is dataclass_cache._cached_exec
    assert "exec" not in vars(dataclasses)
    outer, inner = (dataclass_cache._load(dataclass_cache.cache_file(n)) for n in ("outer", "inner"))
    assert len(inner) == 2 and not inner.keys() & outer.keys()   # slots' __init__ and `z = 41 + 1`


def test_an_exec_of_someone_elses_in_dataclasses_is_put_back():
    def theirs(*args):
        return exec(*args)
    vars(dataclasses)["exec"] = theirs
    try:
        with dataclass_cache.cached():
            assert vars(dataclasses)["exec"] is dataclass_cache._cached_exec
            make({})
        assert vars(dataclasses)["exec"] is theirs
    finally:
        vars(dataclasses).pop("exec", None)
