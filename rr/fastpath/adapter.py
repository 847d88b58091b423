"""The WAT of the outer component: the guest behind a byte-moving adapter.

    outer imports = the guest's own imports (same names, same types) + rr:fast/streams
    adapter       = a core module with a bump allocator (the canonical ABI's realloc)
                    and four shims: [method]output-stream.write,
                    [method]output-stream.blocking-write-and-flush,
                    [method]input-stream.read, [method]input-stream.blocking-read
    guest         = instantiated with a wasi:io/streams instance whose resource types
                    are the host's own and whose other functions are the host's too

Each shim takes the guest's list<u8> (copied into the adapter's memory by the
canonical ABI), hands the same (ptr, len) to the host as a latin1 `string`, which
wasmtime moves as one buffer instead of value by value, and drops the borrowed
handle it was lent.  Reads come back as base64 (ASCII: the fastest string for both
CPython and wasmtime to transcode), decoded in place by the shim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wasmtime import component as wc

from . import wat_types

FAST_INTERFACE = "rr:fast/streams"

# The four functions that move bytes, by their WIT name in wasi:io/streams.
WRITES = ("[method]output-stream.write", "[method]output-stream.blocking-write-and-flush")
READS = ("[method]input-stream.read", "[method]input-stream.blocking-read")
HOST_NAME = {  # the rr:fast/streams function serving each
    WRITES[0]: "write", WRITES[1]: "blocking-write-and-flush",
    READS[0]: "read", READS[1]: "blocking-read",
}

RETURN_AREA = 0   # 12 bytes: result<list<u8>|_, stream-error> as the canonical ABI lays it out
BASE64_TABLE = 64  # 256 bytes: base64 character -> its 6-bit value
HEAP_BASE = 512   # the bump allocator starts here and is reset after every call
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
UTF16_TAG = 0x80000000  # set in a latin1+utf16 string's length when it is UTF-16


@dataclass
class StreamsShape:
    """What the guest imports from wasi:io/streams."""

    name: str                      # e.g. "wasi:io/streams@0.2.12"
    index: int                     # its instance index among the outer's imports
    items: list[tuple[str, Any]]   # (export name, wasmtime-py type) in the guest's order
    params: dict[str, tuple[str, str]]  # fast function -> its two parameter names

    @property
    def writes(self) -> list[str]:
        return [n for n in WRITES if n in self.params]

    @property
    def reads(self) -> list[str]:
        return [n for n in READS if n in self.params]


def _alloc_module() -> str:
    return f"""
  (core module $alloc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const {HEAP_BASE}))
    ;; realloc for the canonical ABI: a bump allocator, emptied by `reset` after each call
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (if (i32.lt_u (local.get $end) (local.get $p)) (then unreachable))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                       (i32.const 65535)) (i32.const 16)))
                      (i32.const -1))
            (then unreachable))))
      (if (local.get $old)
        (then (memory.copy (local.get $p) (local.get $old)
                (select (local.get $old_size) (local.get $size)
                        (i32.lt_u (local.get $old_size) (local.get $size))))))
      (global.set $heap (local.get $end))
      (local.get $p))
    ;; post-return of every shim: the guest has its copy of the result by now
    (func (export "reset") (param i32) (global.set $heap (i32.const {HEAP_BASE})))
  )"""


def _shim_module(shape: StreamsShape) -> str:
    imports, funcs = [], []
    for i, name in enumerate(shape.writes):
        imports.append(f'(import "host" "w{i}" (func $w{i} (param i32 i32 i32 i32)))')
        funcs.append(f"""
    (func (export "w{i}") (param $self i32) (param $ptr i32) (param $len i32) (result i32)
      (call $w{i} (local.get $self) (local.get $ptr) (local.get $len) (i32.const {RETURN_AREA}))
      (call $drop-out (local.get $self))  ;; a borrowed handle must not outlive the call
      (i32.const {RETURN_AREA}))""")
    for i, name in enumerate(shape.reads):
        imports.append(f'(import "host" "r{i}" (func $r{i} (param i32 i64 i32)))')
        funcs.append(f"""
    (func (export "r{i}") (param $self i32) (param $len i64) (result i32)
      (call $r{i} (local.get $self) (local.get $len) (i32.const {RETURN_AREA}))
      (call $drop-in (local.get $self))
      (if (i32.eqz (i32.load8_u (i32.const {RETURN_AREA})))
        (then (i32.store (i32.const {RETURN_AREA + 8})
                (call $unbase64 (i32.load (i32.const {RETURN_AREA + 4})) (i32.load (i32.const {RETURN_AREA + 8}))))))
      (i32.const {RETURN_AREA}))""")
    if shape.reads:
        table = "".join(f"\\{_ALPHABET.index(chr(c)) if chr(c) in _ALPHABET else 0:02x}" for c in range(256))
        funcs.append(f"""
    (data (i32.const {BASE64_TABLE}) "{table}")
    ;; Decodes base64 in place and returns the byte count.  A UTF-16 tagged length
    ;; (a code point above 0xFF) or a length that is not a multiple of 4 is not base64.
    (func $unbase64 (param $p i32) (param $n i32) (result i32)
      (local $i i32) (local $o i32) (local $v i32) (local $pad i32)
      (if (i32.and (local.get $n) (i32.const {UTF16_TAG | 3})) (then unreachable))
      ;; "=" padding (61): read before decoding overwrites it
      (if (local.get $n)
        (then
          (local.set $pad (i32.add
            (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 1)))) (i32.const 61))
            (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 2)))) (i32.const 61))))))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $v (i32.or
          (i32.or (i32.shl (i32.load8_u offset={BASE64_TABLE} (i32.load8_u (i32.add (local.get $p) (local.get $i)))) (i32.const 18))
                  (i32.shl (i32.load8_u offset={BASE64_TABLE} (i32.load8_u offset=1 (i32.add (local.get $p) (local.get $i)))) (i32.const 12)))
          (i32.or (i32.shl (i32.load8_u offset={BASE64_TABLE} (i32.load8_u offset=2 (i32.add (local.get $p) (local.get $i)))) (i32.const 6))
                  (i32.load8_u offset={BASE64_TABLE} (i32.load8_u offset=3 (i32.add (local.get $p) (local.get $i)))))))
        ;; writes stay behind the reads: 3 bytes out for every 4 in
        (i32.store8 (i32.add (local.get $p) (local.get $o)) (i32.shr_u (local.get $v) (i32.const 16)))
        (i32.store8 offset=1 (i32.add (local.get $p) (local.get $o)) (i32.shr_u (local.get $v) (i32.const 8)))
        (i32.store8 offset=2 (i32.add (local.get $p) (local.get $o)) (local.get $v))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (local.set $o (i32.add (local.get $o) (i32.const 3)))
        (br $next)))
      (i32.sub (local.get $o) (local.get $pad)))""")
    if shape.writes:
        imports.append('(import "host" "drop-out" (func $drop-out (param i32)))')
    if shape.reads:
        imports.append('(import "host" "drop-in" (func $drop-in (param i32)))')
    body = "\n    ".join(imports)
    return f"""
  (core module $shim
    (import "alloc" "memory" (memory 0))
    {body}{''.join(funcs)}
  )"""


def _fast_import(shape: StreamsShape) -> str:
    lines = ["(alias outer 1 $error (type $error-o))",
             '(export "error" (type $e (eq $error-o)))',
             '(type $se-v (variant (case "last-operation-failed" (own $e)) (case "closed")))',
             '(export "stream-error" (type $se (eq $se-v)))']
    if shape.writes:
        lines += ["(alias outer 1 $output-stream (type $os-o))",
                  '(export "output-stream" (type $os (eq $os-o)))',
                  '(type $write (func (param "self" (borrow $os)) (param "contents" string) (result (result (error $se)))))']
        lines += [f'(export "{HOST_NAME[n]}" (func (type $write)))' for n in shape.writes]
    if shape.reads:
        lines += ["(alias outer 1 $input-stream (type $is-o))",
                  '(export "input-stream" (type $is (eq $is-o)))',
                  '(type $read (func (param "self" (borrow $is)) (param "len" u64) (result (result string (error $se)))))']
        lines += [f'(export "{HOST_NAME[n]}" (func (type $read)))' for n in shape.reads]
    body = "\n      ".join(lines)
    return f"""
  (type $fast-type (instance
      {body}
  ))
  (import "{FAST_INTERFACE}" (instance $fast (type $fast-type)))"""


def _lowered_and_lifted(shape: StreamsShape) -> str:
    out = []
    host_funcs = []
    for prefix, names in (("w", shape.writes), ("r", shape.reads)):
        for i, name in enumerate(names):
            realloc = " (realloc $realloc)" if prefix == "r" else ""
            out.append(f'(alias export $fast "{HOST_NAME[name]}" (func $host-{prefix}{i}))')
            out.append(f"(core func $low-{prefix}{i} (canon lower (func $host-{prefix}{i}) (memory $memory){realloc} "
                       "string-encoding=latin1+utf16))")
            host_funcs.append(f'(export "{prefix}{i}" (func $low-{prefix}{i}))')
    if shape.writes:
        out.append("(core func $drop-out (canon resource.drop $output-stream))")
        host_funcs.append('(export "drop-out" (func $drop-out))')
    if shape.reads:
        out.append("(core func $drop-in (canon resource.drop $input-stream))")
        host_funcs.append('(export "drop-in" (func $drop-in))')
    out.append(f'(core instance $shim-i (instantiate $shim (with "alloc" (instance $alloc-i)) '
               f'(with "host" (instance {" ".join(host_funcs)}))))')
    for i, name in enumerate(shape.writes):
        self_p, data_p = shape.params[name]
        out.append(f'(type $lift-w{i} (func (param "{self_p}" (borrow $output-stream)) (param "{data_p}" (list u8)) '
                   "(result (result (error $stream-error)))))")
        out.append(f'(func $lifted-{_ident(name)} (type $lift-w{i}) (canon lift (core func $shim-i "w{i}") '
                   "(memory $memory) (realloc $realloc) (post-return $reset)))")
    for i, name in enumerate(shape.reads):
        self_p, len_p = shape.params[name]
        out.append(f'(type $lift-r{i} (func (param "{self_p}" (borrow $input-stream)) (param "{len_p}" u64) '
                   "(result (result (list u8) (error $stream-error)))))")
        out.append(f'(func $lifted-{_ident(name)} (type $lift-r{i}) (canon lift (core func $shim-i "r{i}") '
                   "(memory $memory) (realloc $realloc) (post-return $reset)))")
    return "\n  ".join([""] + out)


def _ident(wit_name: str) -> str:
    return wit_name.replace("[method]", "").replace(".", "-")


def _reexport(shape: StreamsShape) -> str:
    """The instance the guest gets as wasi:io/streams: host types, fast byte movers.

    Built by a nested component rather than an inline `(instance (export ...))`: the
    validator only accepts `[method]R.f` exports whose resource R the exporting
    component names itself, so each function is re-exported with a type ascription
    written against the re-exported types.
    """
    head, tail = [], []
    inner: list[tuple[Any, str]] = []     # named types as this component imports them
    exported: list[tuple[Any, str]] = []  # ... and as it re-exports them
    for k, (name, ty) in enumerate(shape.items):
        if isinstance(ty, wc.ResourceType):
            head.append(f'(import "type-t{k}" (type $i{k} (sub resource)))')
            tail.append(f'(export $e{k} "{name}" (type $i{k}))')
        elif isinstance(ty, wc.FuncType):
            head.append(f"(type $fi{k} {wat_types.func_type(ty, inner)})")
            head.append(f'(import "func-f{k}" (func $i{k} (type $fi{k})))')
            tail.append(f"(type $fe{k} {wat_types.func_type(ty, exported)})")
            tail.append(f'(export "{name}" (func $i{k}) (func (type $fe{k})))')
            continue
        else:
            head.append(f"(type $di{k} {wat_types.definition(ty, inner)})")
            head.append(f'(import "type-t{k}" (type $i{k} (eq $di{k})))')
            tail.append(f"(type $de{k} {wat_types.definition(ty, exported)})")
            tail.append(f'(export $e{k} "{name}" (type $de{k}))')
        inner.append((ty, f"$i{k}"))
        exported.append((ty, f"$e{k}"))
    args, aliases = [], []
    fast = set(shape.writes) | set(shape.reads)
    for k, (name, ty) in enumerate(shape.items):
        if isinstance(ty, wc.FuncType):
            if name in fast:
                args.append(f'(with "func-f{k}" (func $lifted-{_ident(name)}))')
                continue
            aliases.append(f'(alias export {shape.index} "{name}" (func $pass{k}))')
            args.append(f'(with "func-f{k}" (func $pass{k}))')
        else:
            aliases.append(f'(alias export {shape.index} "{name}" (type $pass{k}))')
            args.append(f'(with "type-t{k}" (type $pass{k}))')
    body = "\n    ".join(head + tail)
    return f"""
  (component $reexport
    {body}
  )
  {chr(10).join('  ' + a for a in aliases).strip()}
  (instance $guest-streams (instantiate $reexport
    {(chr(10) + '    ').join(args)}))"""


def stub(declarations: str, run_export: str) -> str:
    """A component with the guest's exact imports and its run export: stands in for the
    guest while the outer component is compiled from text, then is swapped for it."""
    return f"""(component
{declarations}
  (core module $m (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $r (export "run" (func $run)))
  (export "{run_export}" (instance $r))
)"""


def outer(declarations: str, imports: list[tuple[str, int]], shape: StreamsShape,
          stub_text: str, run_export: str) -> str:
    args = "\n      ".join(
        f'(with "{name}" (instance {"$guest-streams" if name == shape.name else index}))'
        for name, index in imports)
    return f"""(component
{declarations}
  (alias export {shape.index} "error" (type $error))
  (alias export {shape.index} "stream-error" (type $stream-error))
  {f'(alias export {shape.index} "output-stream" (type $output-stream))' if shape.writes else ''}
  {f'(alias export {shape.index} "input-stream" (type $input-stream))' if shape.reads else ''}
  {_fast_import(shape)}
  {_alloc_module()}
  (core instance $alloc-i (instantiate $alloc))
  (alias core export $alloc-i "memory" (core memory $memory))
  (alias core export $alloc-i "realloc" (core func $realloc))
  (alias core export $alloc-i "reset" (core func $reset))
  {_shim_module(shape)}
  {_lowered_and_lifted(shape)}
  {stub_text}
  {_reexport(shape)}
  (instance $guest (instantiate 0
      {args}))
  (alias export $guest "{run_export}" (instance $run))
  (export "{run_export}" (instance $run))
)"""
