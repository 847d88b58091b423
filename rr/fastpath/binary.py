"""Just enough of the component binary format to cut a guest apart and put it back.

A component is an 8-byte preamble followed by sections (id byte, LEB128 size, payload).
Components made by wit-component start with their type/import/alias sections: that
prefix alone is a valid component which imports exactly what the guest imports, and
it is tiny even when the guest is 18 MB, so it is cheap to print and to type-check.
"""

from __future__ import annotations

from collections.abc import Iterator

CUSTOM, ALIAS, TYPE, COMPONENT, IMPORT, EXPORT = 0, 6, 7, 4, 10, 11
_DECLARATIONS = {CUSTOM, ALIAS, TYPE, IMPORT}


class Malformed(ValueError):
    pass


def _leb(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise Malformed("truncated LEB128")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _encode_leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sections(wasm: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(id, section start, payload start, end) of each top-level section."""
    i = 8
    while i < len(wasm):
        sid = wasm[i]
        size, payload = _leb(wasm, i + 1)
        end = payload + size
        if end > len(wasm):
            raise Malformed("section runs past the end of the file")
        yield sid, i, payload, end
        i = end


def declarations(wasm: bytes) -> bytes:
    """The guest's leading type/import/alias sections as a component of their own."""
    end = 8
    for sid, _start, _payload, stop in sections(wasm):
        if sid not in _DECLARATIONS:
            break
        end = stop
    return wasm[:end]


def later_imports(wasm: bytes) -> bool:
    """Whether an import section follows the leading declarations (a shape not handled)."""
    seen_other = False
    for sid, *_ in sections(wasm):
        if sid not in _DECLARATIONS:
            seen_other = True
        elif sid == IMPORT and seen_other:
            return True
    return False


def _name(data: bytes, i: int) -> tuple[str, int]:
    size, i = _leb(data, i)
    return data[i:i + size].decode("utf-8"), i + size


def export_names(wasm: bytes) -> list[str]:
    """Names of the component's top-level exports (sort and index are skipped)."""
    names: list[str] = []
    for sid, _start, payload, end in sections(wasm):
        if sid != EXPORT:
            continue
        count, i = _leb(wasm, payload)
        for _ in range(count):
            i += 1  # exportname' discriminant: 0x00 plain, 0x01 interface
            name, i = _name(wasm, i)
            sort = wasm[i]
            i += 2 if sort == 0x00 else 1  # core sorts carry a second byte
            _idx, i = _leb(wasm, i)
            if wasm[i] == 0x01:  # optional type ascription: externdesc
                i = _skip_externdesc(wasm, i + 1)
            else:
                i += 1
            names.append(name)
        if i != end:
            raise Malformed("export section not fully parsed")
    return names


def _skip_externdesc(data: bytes, i: int) -> int:
    kind = data[i]
    if kind == 0x00:          # core module: 0x00 0x11 typeidx
        return _leb(data, i + 2)[1]
    if kind == 0x03:          # type bound: eq idx / sub resource
        return _leb(data, i + 2)[1] if data[i + 1] == 0x00 else i + 2
    if kind in (0x01, 0x04, 0x05):  # func / component / instance: typeidx
        return _leb(data, i + 1)[1]
    raise Malformed(f"unsupported export ascription kind {kind:#x}")


def replace_component(outer: bytes, stub: bytes, guest: bytes) -> bytes:
    """Swap the nested component section whose payload is `stub` for `guest`."""
    found = [(start, end) for sid, start, payload, end in sections(outer)
             if sid == COMPONENT and outer[payload:end] == stub]
    if len(found) != 1:
        raise Malformed(f"expected the stub once among the nested components, found it {len(found)} times")
    start, end = found[0]
    return outer[:start] + bytes([COMPONENT]) + _encode_leb(len(guest)) + guest + outer[end:]
