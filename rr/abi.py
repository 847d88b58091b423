"""The host-call layer: every WASI function rr implements in Python crosses here.

wasmtime-py's stock `add_func` re-reads the function type and converts every value
through generic per-type objects on every call (8-55 us a call, list<u8> at ~1 MB/s).
This module instead compiles, once per imported function, a lifter per parameter and
a lowerer for the result, from the component's *own* import types, and registers one
raw C-API trampoline for all of them.

Python representation of WIT values (both directions):
    bool/ints/floats/string  native;  char  str of length 1
    list<u8>                 bytes (moved in bulk with numpy, not element by element)
    list<T>, tuple<..>       list / tuple
    record                   tuple in field order (lowering also takes a dict)
    variant                  (case, payload) tuple; lowering takes a bare str for a payload-less case
    enum                     str;  flags  frozenset[str] (lowering takes any iterable)
    option<T>                None or the value
    result<T, E>             nested: ('ok', v) / ('err', e).  At the top level of a host
                             function, returning v means ok and raising WasiError(e) means err.
    own<R> / borrow<R>       the Python object that represents the host resource

Lowering never leaves half-built values behind: a lowerer that fails leaves its target
untouched, and one that fails inside a container it allocated neutralizes the slots it
did not fill and frees the container (a value that cannot be lowered must trap the
guest, not hand wasmtime uninitialised memory to free). On replay, values are checked
against their WIT type before lowering (rr/typecheck.py, wired in by `bind`).

Two exceptions cross a host call on purpose: WasiError (becomes an `err` value) and
GuestExit (unwinds the guest: wasi:cli/exit).  Anything else is a bug in rr; it traps
the guest and is re-raised by the runner with the function's name.
"""

from __future__ import annotations

from functools import partial

import ctypes
import itertools
import threading
from collections.abc import Callable
from ctypes import POINTER, byref
from dataclasses import dataclass
from typing import Any

import wasmtime
import wasmtime._bindings as raw_api
import wasmtime._ffi as ffi
from wasmtime import component as wc

from .typecheck import Check, checker, type_name

VAL = ffi.wasmtime_component_val_t
VAL_SIZE = ctypes.sizeof(VAL)  # 32 bytes: kind (u8) at 0, payload union at 8
PAYLOAD_OFFSET = VAL.of.offset
assert VAL_SIZE == 32 and PAYLOAD_OFFSET == 8, "unexpected wasmtime_component_val_t layout"

_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value


class WasiError(Exception):
    """Raised by a host function to return `err(payload)` to the guest."""

    def __init__(self, payload: Any):
        super().__init__(payload)
        self.payload = payload


class Unwind(BaseException):
    """Stops the guest on purpose from inside a host call; the runner handles it.

    Subclasses: GuestExit (wasi:cli/exit), a replay divergence, a partial replay's
    stop, an interrupted wait. A BaseException so that no host code catches it.
    """


class GuestExit(Unwind):
    """wasi:cli/exit: unwinds the guest's stack; the runner turns it into a status."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class NotProvided(Unwind):
    """The guest called an imported function rr does not implement."""


class HostFault(Exception):
    """A host function failed in a way that is rr's fault; carries the WIT name."""


# --------------------------------------------------------------------------- resources


class ResourceTable:
    """Host resources handed to the guest: rep (u32 handle payload) <-> Python object."""

    def __init__(self) -> None:
        self._objects: dict[int, Any] = {}
        self._next = itertools.count(1)

    def add(self, obj: Any) -> int:
        rep = next(self._next)
        self._objects[rep] = obj
        return rep

    def get(self, rep: int) -> Any:
        return self._objects[rep]

    def take(self, rep: int) -> Any:
        return self._objects.pop(rep)

    def drop(self, rep: int) -> None:
        """The guest dropped its handle: release what the object holds."""
        obj = self._objects.pop(rep, None)
        close = getattr(obj, "close", None)
        if close is not None:
            close()

    def __len__(self) -> int:
        return len(self._objects)


_type_ids: dict[str, int] = {}


def resource_type_id(qualified: str) -> int:
    """One host type id per resource, shared by every version of its interface.

    `qualified` is e.g. "wasi:io/streams/output-stream" (no @version): a component that
    imports wasi:io/streams@0.2.12 and wasi:http/types@0.2.0 must see one stream type.
    """
    return _type_ids.setdefault(qualified, len(_type_ids) + 1)


# --------------------------------------------------------------------------- converters

Lift = Callable[[Any, VAL], Any]          # (ctx pointer, val) -> python
Lower = Callable[[Any, Any, VAL], None]   # (ctx pointer, python, val to fill) -> None


def _take_name(vec: Any) -> str:
    s = ffi.to_str(vec)
    ffi.wasm_byte_vec_delete(byref(vec))
    return s


def _neutralize(val: VAL) -> None:
    """Mark a value whose contents we took over so that its destructor frees nothing."""
    val.kind = ffi.WASMTIME_COMPONENT_BOOL.value
    val.of.boolean = False


# list<u8> crosses the C API as one 32-byte value per byte. Small lists are packed and
# unpacked with ctypes; large ones with numpy strided views (4x faster per byte), which
# is imported on first use so that a small guest does not pay its import time.
BULK = 1024


def _numpy() -> Any:
    import numpy
    return numpy


def _address(ptr: Any) -> int:
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


def _unpack_bytes(ptr: Any, n: int) -> bytes:
    addr = _address(ptr)
    if n < BULK:
        return ctypes.string_at(addr, n * VAL_SIZE)[PAYLOAD_OFFSET::VAL_SIZE]
    np = _numpy()
    buf = (ctypes.c_uint8 * (n * VAL_SIZE)).from_address(addr)
    return np.frombuffer(buf, dtype=np.uint8).reshape(n, VAL_SIZE)[:, PAYLOAD_OFFSET].tobytes()


def _pack_bytes(ptr: Any, data: bytes) -> None:
    n = len(data)
    buf = (ctypes.c_uint8 * (n * VAL_SIZE)).from_address(_address(ptr))
    if n < BULK:
        view = memoryview(buf).cast("B")
        view[0::VAL_SIZE] = bytes((_U8_KIND,)) * n
        view[PAYLOAD_OFFSET::VAL_SIZE] = data
        return
    np = _numpy()
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(n, VAL_SIZE)
    arr[:, 0] = _U8_KIND
    arr[:, PAYLOAD_OFFSET] = np.frombuffer(data, dtype=np.uint8)


class _Name:
    """A string the host lowers again and again (record field, enum case, variant tag):
    encoded once, copied into a fresh wasm_byte_vec_t with one raw C call."""

    __slots__ = ("buf", "size")

    def __init__(self, text: str):
        data = text.encode("utf-8")
        self.size = len(data)
        self.buf = (ctypes.c_ubyte * max(1, self.size)).from_buffer_copy(data or b"\0")

    def store(self, vec: Any) -> None:
        raw_api._wasm_byte_vec_new(byref(vec), self.size, self.buf)


_names: dict[str, _Name] = {}


def _name(text: str) -> _Name:
    name = _names.get(text)
    if name is None:
        name = _names[text] = _Name(text)
    return name


# Private prototypes of the resource calls every borrow makes, typed with plain addresses
# (wasmtime-py's own function objects are shared: their argtypes are not ours to change).
def _c(name: str, restype: Any, *argtypes: Any) -> Any:
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, raw_api.dll))


_vp = ctypes.c_void_p
_any_to_host = _c("wasmtime_component_resource_any_to_host", _vp, _vp, _vp, _vp)
_any_delete = _c("wasmtime_component_resource_any_delete", None, _vp)
_host_rep = _c("wasmtime_component_resource_host_rep", ctypes.c_uint32, _vp)
_host_delete = _c("wasmtime_component_resource_host_delete", None, _vp)


class Converters:
    """Builds lifters/lowerers for value types; knows the run's resource table."""

    def __init__(self, table: ResourceTable, resources: list[tuple[wc.ResourceType, int]]):
        self.table = table
        self._resources = resources  # (imported ResourceType, host type id)

    # ---- resources
    def _host_type_of(self, ty: wc.ResourceType) -> int:
        for candidate, type_id in self._resources:
            if candidate == ty:
                return type_id
        raise HostFault("a function uses a resource type from an interface rr does not serve")

    def _lift_resource(self, own: bool) -> Lift:
        table = self.table

        def lift(ctx: Any, val: VAL) -> Any:
            # The value's payload is the resource_any pointer: take it (and null the field,
            # since the caller frees the args afterwards), then ask for its host rep.
            slot = ctypes.c_void_p.from_address(ctypes.addressof(val) + PAYLOAD_OFFSET)
            any_ptr = slot.value
            slot.value = None
            host_ptr = ctypes.c_void_p()
            err = _any_to_host(ctx, any_ptr, byref(host_ptr))
            _any_delete(any_ptr)
            if err:
                raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, POINTER(ffi.wasmtime_error_t)))
            rep = _host_rep(host_ptr)
            _host_delete(host_ptr)
            # An owned handle moves to the host: the object leaves the table and the
            # callee becomes responsible for it (e.g. outgoing-body.finish).
            return table.take(rep) if own else table.get(rep)

        return lift

    def _lower_own(self, type_id: int) -> Lower:
        table = self.table

        def lower(ctx: Any, obj: Any, val: VAL) -> None:
            rep = table.add(obj)
            host_ptr = ffi.wasmtime_component_resource_host_new(True, rep, type_id)
            any_ptr = POINTER(ffi.wasmtime_component_resource_any_t)()
            err = ffi.wasmtime_component_resource_host_to_any(ctx, host_ptr, byref(any_ptr))
            ffi.wasmtime_component_resource_host_delete(host_ptr)
            if err:
                table.take(rep)
                raise wasmtime.WasmtimeError._from_ptr(err)
            val.kind = ffi.WASMTIME_COMPONENT_RESOURCE.value
            val.of.resource = any_ptr

        return lower

    # ---- dispatch on type
    def lift(self, ty: wc.ValType) -> Lift:
        scalar = _SCALARS.get(type(ty))
        if scalar is not None:
            field = scalar[1]
            return lambda ctx, val: getattr(val.of, field)
        if isinstance(ty, wc.Char):
            return lambda ctx, val: chr(val.of.character)
        if isinstance(ty, wc.String):
            return lambda ctx, val: _take_name(val.of.string)
        if isinstance(ty, wc.ListType):
            return self._lift_list(ty)
        if isinstance(ty, (wc.RecordType, wc.TupleType)):
            return self._lift_fields(ty)
        if isinstance(ty, wc.EnumType):
            return lambda ctx, val: _take_name(val.of.enumeration)
        if isinstance(ty, wc.FlagsType):
            def lift_flags(ctx: Any, val: VAL) -> frozenset[str]:
                flags = val.of.flags
                names = frozenset(ffi.to_str(flags.data[i]) for i in range(flags.size))
                ffi.wasmtime_component_valflags_delete(byref(flags))
                return names
            return lift_flags
        if isinstance(ty, wc.OptionType):
            inner = self.lift(ty.payload)
            def lift_option(ctx: Any, val: VAL) -> Any:
                # take_pointer nulls the parent's field: wasmtime frees the args after the call
                return _unbox(ctx, ffi.take_pointer(val.of, "option"), inner) if val.of.option else None
            return lift_option
        if isinstance(ty, wc.ResultType):
            ok = self.lift(ty.ok) if ty.ok is not None else None
            er = self.lift(ty.err) if ty.err is not None else None
            def lift_result(ctx: Any, val: VAL) -> tuple[str, Any]:
                res = val.of.result
                lifter = ok if res.is_ok else er
                payload = _unbox(ctx, ffi.take_pointer(res, "val"), lifter) if res.val else None
                return ("ok" if res.is_ok else "err", payload)
            return lift_result
        if isinstance(ty, wc.VariantType):
            cases = {name: (self.lift(p) if p is not None else None) for name, p in ty.cases}
            def lift_variant(ctx: Any, val: VAL) -> tuple[str, Any]:
                var = val.of.variant
                name = _take_name(var.discriminant)
                payload = _unbox(ctx, ffi.take_pointer(var, "val"), cases[name]) if var.val else None
                return (name, payload)
            return lift_variant
        if isinstance(ty, wc.OwnType):
            return self._lift_resource(own=True)
        if isinstance(ty, wc.BorrowType):
            return self._lift_resource(own=False)
        raise HostFault(f"rr cannot lift values of type {type(ty).__name__}")

    def lower(self, ty: wc.ValType) -> Lower:
        scalar = _SCALARS.get(type(ty))
        if scalar is not None:
            kind, field = scalar
            def lower_scalar(ctx: Any, v: Any, val: VAL) -> None:
                setattr(val.of, field, v)
                val.kind = kind
            return lower_scalar
        if isinstance(ty, wc.Char):
            def lower_char(ctx: Any, v: str, val: VAL) -> None:
                val.of.character = ord(v)
                val.kind = ffi.WASMTIME_COMPONENT_CHAR.value
            return lower_char
        if isinstance(ty, wc.String):
            def lower_string(ctx: Any, v: str, val: VAL) -> None:
                val.of.string = ffi.str_to_capi(v)
                val.kind = ffi.WASMTIME_COMPONENT_STRING.value
            return lower_string
        if isinstance(ty, wc.ListType):
            return self._lower_list(ty)
        if isinstance(ty, (wc.RecordType, wc.TupleType)):
            return self._lower_fields(ty)
        if isinstance(ty, wc.EnumType):
            cases = {name: _name(name) for name in ty.names}

            def lower_enum(ctx: Any, v: str, val: VAL) -> None:
                cases[v].store(val.of.enumeration)
                val.kind = ffi.WASMTIME_COMPONENT_ENUM.value
            return lower_enum
        if isinstance(ty, wc.FlagsType):
            flag_names = {name: _name(name) for name in ty.names}

            def lower_flags(ctx: Any, v: Any, val: VAL) -> None:
                names = [flag_names[name] for name in v]  # an unknown flag fails before allocating
                raw = ffi.wasmtime_component_valflags_t()
                ffi.wasmtime_component_valflags_new_uninit(raw, len(names))
                for i, name in enumerate(names):
                    name.store(raw.data[i])
                val.kind = ffi.WASMTIME_COMPONENT_FLAGS.value
                val.of.flags = raw
            return lower_flags
        if isinstance(ty, wc.OptionType):
            inner = self.lower(ty.payload)
            def lower_option(ctx: Any, v: Any, val: VAL) -> None:
                box = _box(ctx, v, inner) if v is not None else None
                val.kind = ffi.WASMTIME_COMPONENT_OPTION.value
                val.of.option = box
            return lower_option
        if isinstance(ty, wc.ResultType):
            ok = self.lower(ty.ok) if ty.ok is not None else None
            er = self.lower(ty.err) if ty.err is not None else None
            def lower_result(ctx: Any, v: tuple[str, Any], val: VAL) -> None:
                tag, payload = v
                lowerer = ok if tag == "ok" else er
                box = _box(ctx, payload, lowerer) if lowerer else None
                val.of.result.is_ok = tag == "ok"
                val.of.result.val = box
                val.kind = ffi.WASMTIME_COMPONENT_RESULT.value
            return lower_result
        if isinstance(ty, wc.VariantType):
            cases = {name: (self.lower(p) if p is not None else None) for name, p in ty.cases}
            tags = {name: _name(name) for name in cases}
            def lower_variant(ctx: Any, v: Any, val: VAL) -> None:
                tag, payload = (v, None) if isinstance(v, str) else v
                lowerer = cases[tag]
                box = _box(ctx, payload, lowerer) if lowerer else None
                tags[tag].store(val.of.variant.discriminant)
                val.of.variant.val = box
                val.kind = ffi.WASMTIME_COMPONENT_VARIANT.value
            return lower_variant
        if isinstance(ty, wc.OwnType):
            return self._lower_own(self._host_type_of(ty.ty))
        raise HostFault(f"rr cannot lower values of type {type(ty).__name__}")

    # ---- lists: bytes in bulk
    def _lift_list(self, ty: wc.ListType) -> Lift:
        element = ty.element
        if isinstance(element, wc.U8):
            def lift_bytes(ctx: Any, val: VAL) -> bytes:
                lst = val.of.list
                n = lst.size
                data = _unpack_bytes(lst.data, n) if n else b""
                ffi.wasmtime_component_vallist_delete(byref(lst))
                return data
            return lift_bytes
        inner = self.lift(element)
        def lift_list(ctx: Any, val: VAL) -> list[Any]:
            lst = val.of.list
            out = []
            for i in range(lst.size):
                item = lst.data[i]
                out.append(inner(ctx, item))
                _neutralize(item)
            ffi.wasmtime_component_vallist_delete(byref(lst))
            return out
        return lift_list

    def _lower_list(self, ty: wc.ListType) -> Lower:
        element = ty.element
        if isinstance(element, wc.U8):
            def lower_bytes(ctx: Any, v: bytes, val: VAL) -> None:
                if type(v) is not bytes and not isinstance(v, (bytearray, memoryview)):
                    raise TypeError(f"list<u8> needs bytes, not {type(v).__name__}")
                n = len(v)
                raw = ffi.wasmtime_component_vallist_t()
                ffi.wasmtime_component_vallist_new_uninit(raw, n)
                if n:
                    _pack_bytes(raw.data, v)
                val.kind = ffi.WASMTIME_COMPONENT_LIST.value
                val.of.list = raw
            return lower_bytes
        inner = self.lower(element)
        def lower_list(ctx: Any, v: list[Any], val: VAL) -> None:
            items = list(v)
            raw = ffi.wasmtime_component_vallist_t()
            ffi.wasmtime_component_vallist_new_uninit(raw, len(items))
            i = 0
            try:
                for i, item in enumerate(items):
                    inner(ctx, item, raw.data[i])
            except BaseException:
                _abandon(raw.data, i, len(items))
                ffi.wasmtime_component_vallist_delete(byref(raw))
                raise
            val.kind = ffi.WASMTIME_COMPONENT_LIST.value
            val.of.list = raw
        return lower_list

    # ---- records and tuples
    def _lift_fields(self, ty: wc.RecordType | wc.TupleType) -> Lift:
        is_record = isinstance(ty, wc.RecordType)
        lifts = [self.lift(t) for _, t in ty.fields] if is_record else [self.lift(t) for t in ty.elements]

        def lift_fields(ctx: Any, val: VAL) -> tuple[Any, ...]:
            raw = val.of.record if is_record else val.of.tuple
            out = []
            for i, lifter in enumerate(lifts):
                item = raw.data[i].val if is_record else raw.data[i]
                out.append(lifter(ctx, item))
                _neutralize(item)
            if is_record:
                ffi.wasmtime_component_valrecord_delete(byref(raw))
            else:
                ffi.wasmtime_component_valtuple_delete(byref(raw))
            return tuple(out)

        return lift_fields

    def _lower_fields(self, ty: wc.RecordType | wc.TupleType) -> Lower:
        if isinstance(ty, wc.RecordType) and ty.fields and all(type(t) in _SCALARS for _, t in ty.fields):
            return _lower_scalar_record(ty)
        if isinstance(ty, wc.RecordType):
            names = [name for name, _ in ty.fields]
            encoded = [_name(name) for name in names]
            lowers = [self.lower(t) for _, t in ty.fields]

            def lower_record(ctx: Any, v: Any, val: VAL) -> None:
                values = [v[n] for n in names] if isinstance(v, dict) else list(v)
                if len(values) != len(names):
                    raise ValueError(f"a record of {len(names)} fields, given {len(values)} values")
                raw = ffi.wasmtime_component_valrecord_t()
                ffi.wasmtime_component_valrecord_new_uninit(raw, len(names))
                i = 0
                try:
                    for i, (name, lowerer, item) in enumerate(zip(encoded, lowers, values)):
                        entry = raw.data[i]
                        lowerer(ctx, item, entry.val)
                        name.store(entry.name)
                except BaseException:
                    _abandon_entries(raw.data, i, len(names))
                    ffi.wasmtime_component_valrecord_delete(byref(raw))
                    raise
                val.kind = ffi.WASMTIME_COMPONENT_RECORD.value
                val.of.record = raw

            return lower_record
        lowers = [self.lower(t) for t in ty.elements]

        def lower_tuple(ctx: Any, v: Any, val: VAL) -> None:
            items = list(v)
            if len(items) != len(lowers):
                raise ValueError(f"a tuple of {len(lowers)} elements, given {len(items)} values")
            raw = ffi.wasmtime_component_valtuple_t()
            ffi.wasmtime_component_valtuple_new_uninit(raw, len(lowers))
            i = 0
            try:
                for i, (lowerer, item) in enumerate(zip(lowers, items)):
                    lowerer(ctx, item, raw.data[i])
            except BaseException:
                _abandon(raw.data, i, len(lowers))
                ffi.wasmtime_component_valtuple_delete(byref(raw))
                raise
            val.kind = ffi.WASMTIME_COMPONENT_TUPLE.value
            val.of.tuple = raw

        return lower_tuple


class _Template:
    """A record value built once (field names and kinds in place), copied for every lowering."""

    def __init__(self, ty: wc.RecordType):
        self.raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(self.raw, len(ty.fields))
        for i, (name, t) in enumerate(ty.fields):
            entry = self.raw.data[i]
            _name(name).store(entry.name)
            entry.val.kind = _SCALARS[type(t)][0]
            entry.val.of.u64 = 0

    def __del__(self) -> None:
        ffi.wasmtime_component_valrecord_delete(byref(self.raw))


_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)
_ENTRY_PAYLOAD = ffi.wasmtime_component_valrecord_entry.val.offset + PAYLOAD_OFFSET
_copy_record = _c("wasmtime_component_valrecord_copy", None, _vp, _vp)
_RECORD_KIND = ffi.WASMTIME_COMPONENT_RECORD.value
_RecordT = ffi.wasmtime_component_valrecord_t
_DATA_OFFSET = _RecordT.data.offset


def _lower_scalar_record(ty: wc.RecordType) -> Lower:
    """A record of numbers and bools (datetime, most stat records' parts): one C call copies
    the template, then each field's payload is stored at its offset (FIELD-NOTES: 7.3 -> 3.6 us
    for wall-clock.now against lowering field by field)."""
    template = _Template(ty)
    source = ctypes.addressof(template.raw)
    names = [name for name, _ in ty.fields]
    slots = [(_SCALAR_CTYPES[type(t)], i * _ENTRY_SIZE + _ENTRY_PAYLOAD) for i, (_, t) in enumerate(ty.fields)]
    n = len(names)

    def lower_record(ctx: Any, v: Any, val: VAL, _template: _Template = template) -> None:
        values = [v[name] for name in names] if isinstance(v, dict) else v
        if len(values) != n:
            raise ValueError(f"a record of {n} fields, given {len(values)} values")
        raw = _RecordT()
        _copy_record(ctypes.addressof(raw), source)
        base = _vp.from_address(ctypes.addressof(raw) + _DATA_OFFSET).value or 0
        try:
            for (ctype, offset), item in zip(slots, values):
                ctype.from_address(base + offset).value = item
        except BaseException:
            ffi.wasmtime_component_valrecord_delete(byref(raw))
            raise
        val.of.record = raw
        val.kind = _RECORD_KIND

    return lower_record


_SCALARS: dict[type, tuple[int, str]] = {
    wc.Bool: (ffi.WASMTIME_COMPONENT_BOOL.value, "boolean"),
    wc.S8: (ffi.WASMTIME_COMPONENT_S8.value, "s8"),
    wc.U8: (ffi.WASMTIME_COMPONENT_U8.value, "u8"),
    wc.S16: (ffi.WASMTIME_COMPONENT_S16.value, "s16"),
    wc.U16: (ffi.WASMTIME_COMPONENT_U16.value, "u16"),
    wc.S32: (ffi.WASMTIME_COMPONENT_S32.value, "s32"),
    wc.U32: (ffi.WASMTIME_COMPONENT_U32.value, "u32"),
    wc.S64: (ffi.WASMTIME_COMPONENT_S64.value, "s64"),
    wc.U64: (ffi.WASMTIME_COMPONENT_U64.value, "u64"),
    wc.F32: (ffi.WASMTIME_COMPONENT_F32.value, "f32"),
    wc.F64: (ffi.WASMTIME_COMPONENT_F64.value, "f64"),
}


_SCALAR_CTYPES: dict[type, Any] = {
    wc.Bool: ctypes.c_bool, wc.S8: ctypes.c_int8, wc.U8: ctypes.c_uint8, wc.S16: ctypes.c_int16,
    wc.U16: ctypes.c_uint16, wc.S32: ctypes.c_int32, wc.U32: ctypes.c_uint32, wc.S64: ctypes.c_int64,
    wc.U64: ctypes.c_uint64, wc.F32: ctypes.c_float, wc.F64: ctypes.c_double,
}


def _abandon(data: Any, start: int, n: int) -> None:
    """Slots start..n-1 of a freshly allocated array were never filled (a lowerer failed at
    `start` and left its slot as it found it): make them plain values its delete can drop."""
    for j in range(start, n):
        _neutralize(data[j])


_NO_NAME = (ctypes.c_ubyte * 1)()


def _abandon_entries(data: Any, start: int, n: int) -> None:
    """The record version of _abandon: unfilled entries also get an empty name."""
    for j in range(start, n):
        entry = data[j]
        raw_api._wasm_byte_vec_new(byref(entry.name), 0, _NO_NAME)
        _neutralize(entry.val)


def _box(ctx: Any, payload: Any, lowerer: Lower) -> Any:
    """Lower into a heap-allocated value (variant/option/result payloads)."""
    tmp = VAL()
    lowerer(ctx, payload, tmp)
    return ffi.wasmtime_component_val_new(byref(tmp))


def _unbox(ctx: Any, box: Any, lifter: Lift | None) -> Any:
    if lifter is None:
        ffi.wasmtime_component_val_free(box)
        return None
    value = lifter(ctx, box.contents)
    _neutralize(box.contents)
    ffi.wasmtime_component_val_free(box)
    return value


# --------------------------------------------------------------------------- functions


@dataclass
class BoundFunc:
    """One imported function: its WIT name, compiled converters and implementation."""

    name: str
    impl: Callable[..., Any]
    lifts: list[Lift]
    lower: Lower | None     # None: the function returns nothing
    top_level_result: bool  # result type is result<..>: returns are ok, WasiError is err


# Every registered function by its env id; wasmtime's finalizer removes it when the linker that
# holds it is dropped, so the table holds the functions of the runs alive now, not of every run.
_BOUND: dict[int, BoundFunc] = {}
_bound_ids = itertools.count(1)


class _PerThread(threading.local):
    """A list of its own on each thread (threading.local runs __init__ once per thread)."""

    def __init__(self) -> None:
        self.items: list[BaseException] = []

    def append(self, e: BaseException) -> None:
        self.items.append(e)

    def clear(self) -> None:
        self.items.clear()

    def __getitem__(self, i: int) -> BaseException:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)


# The last exception raised by a host function (GuestExit, or a bug) for the runner. Per thread:
# host functions run on their guest's thread, where the runner takes it, and several guests may
# run at once in one process.
pending = _PerThread()


def _error(message: str) -> int:
    # An exception escaping this callback makes wasmtime crash: a message quoting a trace's lone
    # surrogate (a JSONL call name "\ud800") must still encode.
    err = ffi.wasmtime_error_new(message.encode("utf-8", "backslashreplace"))
    return ctypes.cast(err, ctypes.c_void_p).value or 0


@ffi.wasmtime_component_func_callback_t
def _trampoline(env, ctx, _ty, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    bound = _BOUND[env]
    try:
        pyargs = [lift(ctx, args[i]) for i, lift in enumerate(bound.lifts)]
        if bound.top_level_result:
            try:
                value = ("ok", bound.impl(*pyargs))
            except WasiError as e:
                value = ("err", e.payload)
            bound.lower(ctx, value, results[0])  # type: ignore[misc]
        else:
            value = bound.impl(*pyargs)
            if bound.lower is not None:
                bound.lower(ctx, value, results[0])
        return 0
    except BaseException as e:  # noqa: BLE001 - see fail_call
        _clear_results(results, nresults)
        return fail_call(bound.name, e)


def fail_call(name: str, e: BaseException) -> int:
    """A host call that raised: the error that traps the guest (its address), with the exception
    kept for the runner. An Unwind stops the guest on purpose; anything else is a bug in rr,
    re-raised by the runner with the function's name. (rr/_native.c reports through this too.)"""
    if isinstance(e, Unwind):
        pending.append(e)
        return _error(f"guest stopped: {e}")
    fault = HostFault(f"host function {name} failed: {type(e).__name__}: {e}")
    fault.__cause__ = e
    pending.append(fault)
    return _error(str(fault))


def _clear_results(results: Any, n: int) -> None:
    # wasmtime drops the result slots of a failed call, and a slot may still hold the bits
    # of an earlier call's value (already moved to the guest): make each a plain bool.
    for i in range(n):
        _neutralize(results[i])


def _release(env: int | None) -> None:
    # wasmtime dropped the function (its linker and every instance of it are gone): let go
    # of the implementation and what it holds (the run's host context, a replay's trace).
    _BOUND.pop(env or 0, None)


_finalize = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release)


# Replay's check of every host function's outcome (tap.Replayer.guard): given the WIT name,
# the implementation, (type name, check) of the value it returns and of its error payload
# (None: it cannot fail), returns the implementation to call instead. The type name is a
# callable: it is needed only to report a bad value, and naming every imported function's
# types up front was a third of linking a replay (each name is read through ctypes).
Named = Callable[[], str]
Guard = Callable[[str, Callable[..., Any], tuple[Named, Check], "tuple[Named, Check] | None"], Callable[..., Any]]


def result_checks(fty: wc.FuncType) -> tuple[tuple[Named, Check], tuple[Named, Check] | None]:
    """The checks of what a host function returns and raises, from its WIT result type."""
    result = fty.result
    if isinstance(result, wc.ResultType):
        return ((partial(type_name, result.ok), checker(result.ok)),
                (partial(type_name, result.err), checker(result.err)))
    return (partial(type_name, result), checker(result)), None


def bind(conv: Converters, name: str, fty: wc.FuncType, impl: Callable[..., Any],
         guard: Guard | None = None) -> BoundFunc:
    lifts = [conv.lift(t) for _, t in fty.params]
    result = fty.result
    if guard is not None:
        impl = guard(name, impl, *result_checks(fty))
    return BoundFunc(name=name, impl=impl, lifts=lifts,
                     lower=conv.lower(result) if result is not None else None,
                     top_level_result=isinstance(result, wc.ResultType))


def register(bound: BoundFunc) -> int:
    """A function for the trampoline: its env value (released with its linker by `_release`)."""
    idx = next(_bound_ids)   # never 0: wasmtime passes a zero env as None
    _BOUND[idx] = bound
    return idx


def add_func(instance: wc.LinkerInstance, name: str, bound: BoundFunc) -> None:
    """Register through the raw C API: one trampoline, the function's index as env."""
    add_raw(instance, name, _trampoline, register(bound), _finalize)


def add_raw(instance: wc.LinkerInstance, name: str, callback: Any, env: int, finalizer: Any) -> None:
    """Register a component function callback (a ctypes function or a C function's address)."""
    if isinstance(callback, int):
        callback = ffi.wasmtime_component_func_callback_t(callback)
        finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(finalizer)
    name_bytes = name.encode("utf-8")
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(name_bytes), len(name_bytes),
        callback, env, finalizer,
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


def trampoline_address() -> int:
    return ctypes.cast(_trampoline, ctypes.c_void_p).value or 0


def finalizer_address() -> int:
    return ctypes.cast(_finalize, ctypes.c_void_p).value or 0


def take_pending() -> BaseException | None:
    """The exception a host function raised during the last guest call, if any."""
    exc = pending[-1] if pending else None
    pending.clear()
    return exc
