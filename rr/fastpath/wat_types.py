"""Writes wasmtime-py component value types back as WAT, for the re-export component.

Named types (resources, variants, records, enums, flags) are written as references
to the type ids a caller has bound for them: the validator wants every such type
used by an exported or imported function to be one the instance names.
"""

from __future__ import annotations

from typing import Any

from wasmtime import component as wc

_PRIMITIVES: dict[type, str] = {
    wc.Bool: "bool", wc.S8: "s8", wc.U8: "u8", wc.S16: "s16", wc.U16: "u16", wc.S32: "s32",
    wc.U32: "u32", wc.S64: "s64", wc.U64: "u64", wc.F32: "f32", wc.F64: "f64",
    wc.Char: "char", wc.String: "string",
}
NAMED = (wc.ResourceType, wc.VariantType, wc.RecordType, wc.EnumType, wc.FlagsType)


class Unprintable(ValueError):
    pass


def value_type(ty: Any, named: list[tuple[Any, str]]) -> str:
    """`named`: (type, "$id") pairs for named types, compared with ==."""
    prim = _PRIMITIVES.get(type(ty))
    if prim is not None:
        return prim
    if isinstance(ty, NAMED):
        return _lookup(ty, named)
    if isinstance(ty, wc.OwnType):
        return f"(own {_lookup(ty.ty, named)})"
    if isinstance(ty, wc.BorrowType):
        return f"(borrow {_lookup(ty.ty, named)})"
    if isinstance(ty, wc.ListType):
        return f"(list {value_type(ty.element, named)})"
    if isinstance(ty, wc.OptionType):
        return f"(option {value_type(ty.payload, named)})"
    if isinstance(ty, wc.TupleType):
        return "(tuple " + " ".join(value_type(t, named) for t in ty.elements) + ")"
    if isinstance(ty, wc.ResultType):
        ok = f" {value_type(ty.ok, named)}" if ty.ok is not None else ""
        err = f" (error {value_type(ty.err, named)})" if ty.err is not None else ""
        return f"(result{ok}{err})"
    raise Unprintable(f"cannot write a {type(ty).__name__} as WAT")


def definition(ty: Any, named: list[tuple[Any, str]]) -> str:
    """The structural definition of a named non-resource type (its cases/fields)."""
    if isinstance(ty, wc.VariantType):
        cases = " ".join(f'(case "{n}"' + (f" {value_type(p, named)})" if p is not None else ")")
                         for n, p in ty.cases)
        return f"(variant {cases})"
    if isinstance(ty, wc.RecordType):
        return "(record " + " ".join(f'(field "{n}" {value_type(t, named)})' for n, t in ty.fields) + ")"
    if isinstance(ty, wc.EnumType):
        return "(enum " + " ".join(f'"{n}"' for n in ty.names) + ")"
    if isinstance(ty, wc.FlagsType):
        return "(flags " + " ".join(f'"{n}"' for n in ty.names) + ")"
    raise Unprintable(f"cannot define a {type(ty).__name__}")


def func_type(fty: wc.FuncType, named: list[tuple[Any, str]]) -> str:
    params = " ".join(f'(param "{n}" {value_type(t, named)})' for n, t in fty.params)
    result = f" (result {value_type(fty.result, named)})" if fty.result is not None else ""
    return f"(func {params}{result})"


def _lookup(ty: Any, named: list[tuple[Any, str]]) -> str:
    for candidate, ident in named:
        if candidate == ty:
            return ident
    raise Unprintable("a function uses a named type its interface does not declare")
