"""Is a Python value a valid WIT value of a given component type? (replay's one type check)

A replayed host call hands the guest whatever the trace holds. Before it is lowered,
`checker(ty)` -- compiled once per imported function, from the same component types
abi.py compiles its converters from -- tests the value against the representation
abi.py documents (record = tuple/list in field order, variant = (case, payload) or a
bare case name, enum = str, flags = iterable of str, result = (tag, payload) ...) and
the ranges of WIT's integers, so a bad value becomes a `BadValue` naming what is wrong
instead of a crash in the lowering code or a value wasmtime silently truncates.

Checks raise only on failure; the passing path builds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

Check = Callable[[Any], None]  # raises BadValue


class BadValue(Exception):
    """A value that is not a valid instance of its WIT type.

    `why` says what is wrong, `path` where (outermost first), `expected` names the type
    when the raiser knows it better than the caller (contract checks of host modules).
    """

    def __init__(self, why: str, expected: str | None = None):
        super().__init__(why)
        self.why = why
        self.expected = expected
        self.path: list[str] = []

    def within(self, where: str) -> "BadValue":
        self.path.insert(0, where)
        return self

    def describe(self) -> str:
        return f"{' '.join(self.path)}: {self.why}" if self.path else self.why


def show(value: Any, limit: int = 40) -> str:
    """A value in a message: short, one line."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(kind: str, names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"{kind} {{{shown}{', ...' if len(names) > limit else ''}}}"


def type_name(ty: wc.ValType | None, depth: int = 0) -> str:
    """A component type in WIT syntax, shortened (component types carry no names)."""
    if ty is None:
        return "nothing"
    simple = _SIMPLE.get(type(ty))
    if simple is not None:
        return simple[0]
    if depth > 1:
        return "..."
    if isinstance(ty, wc.ListType):
        return f"list<{type_name(ty.element, depth + 1)}>"
    if isinstance(ty, wc.TupleType):
        return f"tuple<{', '.join(type_name(t, depth + 1) for t in ty.elements)}>"
    if isinstance(ty, wc.OptionType):
        return f"option<{type_name(ty.payload, depth + 1)}>"
    if isinstance(ty, wc.ResultType):
        if ty.ok is None and ty.err is None:
            return "result"
        ok = type_name(ty.ok, depth + 1) if ty.ok is not None else "_"
        return f"result<{ok}, {type_name(ty.err, depth + 1)}>" if ty.err is not None else f"result<{ok}>"
    if isinstance(ty, wc.RecordType):
        return _names("record", [n for n, _ in ty.fields])
    if isinstance(ty, wc.VariantType):
        return _names("variant", [n for n, _ in ty.cases])
    if isinstance(ty, wc.EnumType):
        return _names("enum", ty.names)
    if isinstance(ty, wc.FlagsType):
        return _names("flags", ty.names)
    if isinstance(ty, wc.OwnType):
        return "own<resource>"
    if isinstance(ty, wc.BorrowType):
        return "borrow<resource>"
    return type(ty).__name__


def _int_check(name: str, lo: int, hi: int) -> Check:
    def check_int(v: Any) -> None:
        if type(v) is not int:
            raise BadValue(f"{show(v)} is not an integer ({name})")
        if not lo <= v <= hi:
            raise BadValue(f"{v} is out of range for {name}")
    return check_int


def _check_bool(v: Any) -> None:
    if type(v) is not bool:
        raise BadValue(f"{show(v)} is not a bool")


def _check_float(v: Any) -> None:
    if type(v) is not float and type(v) is not int:
        raise BadValue(f"{show(v)} is not a number")


def _check_string(v: Any) -> None:
    if type(v) is not str:
        raise BadValue(f"{show(v)} is not a string")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadValue(f"string {show(v)} is not valid Unicode ({e.reason} at {e.start})") from None


def _check_char(v: Any) -> None:
    if type(v) is not str or len(v) != 1:
        raise BadValue(f"{show(v)} is not one character")
    if 0xD800 <= ord(v) <= 0xDFFF:
        raise BadValue(f"{show(v)} is a surrogate, not a Unicode scalar value")


def _check_bytes(v: Any) -> None:
    if type(v) is not bytes and type(v) is not bytearray:
        raise BadValue(f"{show(v)} is not bytes")


# Plain trace values: a resource handed to the guest is always a host object, never one of these.
_PLAIN = (int, bool, float, str, bytes, bytearray, list, tuple, dict, type(None))


def _check_resource(v: Any) -> None:
    if type(v) in _PLAIN:
        raise BadValue(f"{show(v)} is not a resource")


_SIMPLE: dict[type, tuple[str, Check]] = {
    wc.Bool: ("bool", _check_bool),
    wc.S8: ("s8", _int_check("s8", -(1 << 7), (1 << 7) - 1)),
    wc.U8: ("u8", _int_check("u8", 0, (1 << 8) - 1)),
    wc.S16: ("s16", _int_check("s16", -(1 << 15), (1 << 15) - 1)),
    wc.U16: ("u16", _int_check("u16", 0, (1 << 16) - 1)),
    wc.S32: ("s32", _int_check("s32", -(1 << 31), (1 << 31) - 1)),
    wc.U32: ("u32", _int_check("u32", 0, (1 << 32) - 1)),
    wc.S64: ("s64", _int_check("s64", -(1 << 63), (1 << 63) - 1)),
    wc.U64: ("u64", _int_check("u64", 0, (1 << 64) - 1)),
    wc.F32: ("f32", _check_float),
    wc.F64: ("f64", _check_float),
    wc.Char: ("char", _check_char),
    wc.String: ("string", _check_string),
}


def checker(ty: wc.ValType | None) -> Check:
    """The check for values of `ty` (None: the function returns nothing, the value is None)."""
    if ty is None:
        return _check_none
    simple = _SIMPLE.get(type(ty))
    if simple is not None:
        return simple[1]
    if isinstance(ty, wc.ListType):
        return _check_bytes if isinstance(ty.element, wc.U8) else _list_check(checker(ty.element))
    if isinstance(ty, wc.RecordType):
        return _fields_check([n for n, _ in ty.fields], [checker(t) for _, t in ty.fields], "field")
    if isinstance(ty, wc.TupleType):
        return _fields_check([str(i) for i in range(len(ty.elements))], [checker(t) for t in ty.elements],
                             "element")
    if isinstance(ty, wc.EnumType):
        return _enum_check(ty.names, type_name(ty))
    if isinstance(ty, wc.FlagsType):
        return _flags_check(ty.names, type_name(ty))
    if isinstance(ty, wc.OptionType):
        inner = checker(ty.payload)

        def check_option(v: Any) -> None:
            if v is not None:
                inner(v)
        return check_option
    if isinstance(ty, wc.ResultType):
        return _cases_check({"ok": _payload(ty.ok), "err": _payload(ty.err)}, "result", bare=False)
    if isinstance(ty, wc.VariantType):
        return _cases_check({n: _payload(p) for n, p in ty.cases}, type_name(ty), bare=True)
    if isinstance(ty, (wc.OwnType, wc.BorrowType)):
        return _check_resource
    raise BadValue(f"rr cannot check values of type {type(ty).__name__}")


def _check_none(v: Any) -> None:
    if v is not None:
        raise BadValue(f"{show(v)} where no value belongs")


def _payload(ty: wc.ValType | None) -> Check | None:
    return checker(ty) if ty is not None else None


def _list_check(inner: Check) -> Check:
    def check_list(v: Any) -> None:
        if type(v) is not list and type(v) is not tuple:
            raise BadValue(f"{show(v)} is not a list")
        for i, item in enumerate(v):
            try:
                inner(item)
            except BadValue as e:
                raise e.within(f"item {i}") from None
    return check_list


def _fields_check(names: list[str], checks: list[Check], what: str) -> Check:
    n = len(names)

    def check_fields(v: Any) -> None:
        t = type(v)
        if t is not tuple and t is not list:
            if t is not dict or what != "field":
                raise BadValue(f"{show(v)} is not a {'record' if what == 'field' else 'tuple'}")
            if v.keys() != set(names):  # lowering takes a record as a dict too
                raise BadValue(f"record has fields {sorted(v)}, expected {names}")
            v = [v[name] for name in names]
        if len(v) != n:
            raise BadValue(f"{len(v)} {what}s, expected {n}")
        i = 0
        try:
            for i, check in enumerate(checks):
                check(v[i])
        except BadValue as e:
            raise e.within(f"{what} {names[i]}") from None
    return check_fields


def _enum_check(names: list[str], shown: str) -> Check:
    cases = frozenset(names)

    def check_enum(v: Any) -> None:
        if type(v) is not str or v not in cases:
            raise BadValue(f"{show(v)} is not a case of {shown}")
    return check_enum


def _flags_check(names: list[str], shown: str) -> Check:
    known = frozenset(names)

    def check_flags(v: Any) -> None:
        if type(v) not in (frozenset, set, list, tuple):
            raise BadValue(f"{show(v)} is not a set of flags")
        items = list(v)
        for item in items:
            if type(item) is not str or item not in known:
                raise BadValue(f"{show(item)} is not a flag of {shown}")
        if len(set(items)) != len(items):
            raise BadValue(f"flags {show(items)} repeat a flag")
    return check_flags


def _cases_check(cases: dict[str, Check | None], shown: str, bare: bool) -> Check:
    def check_case(v: Any) -> None:
        if bare and type(v) is str:  # a payload-less case may be given by its name alone
            tag, payload = v, None
        elif (type(v) is tuple or type(v) is list) and len(v) == 2:
            tag, payload = v
        else:
            raise BadValue(f"{show(v)} is not a case of {shown}")
        if type(tag) is not str or tag not in cases:
            raise BadValue(f"{show(tag)} is not a case of {shown}")
        check = cases[tag]
        if check is None:
            if payload is not None:
                raise BadValue(f"case {tag} carries no value, got {show(payload)}")
            return
        try:
            check(payload)
        except BadValue as e:
            raise e.within(f"case {tag}") from None
    return check_case
