"""A bounds-checked scan of an Avro body: finds where a record ends without trusting it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafkalake.wire.framing import DecodeError, DecodeReason

#: Nesting deeper than this (recursive schemas) is refused rather than risk RecursionError.
MAX_DEPTH = 100
#: Items that occupy no bytes (null, empty records) are capped per message: the count is
#: the only thing that bounds the work, and a corrupt count can be in the billions.
MAX_ZERO_WIDTH_ITEMS = 1 << 16


class _Malformed(Exception):
    """Raised inside the scan; turned into DecodeError with the schema id attached."""

    def __init__(self, reason: DecodeReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Cursor:
    __slots__ = ("body", "pos", "depth", "zero_width_left")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0
        self.depth = 0
        self.zero_width_left = MAX_ZERO_WIDTH_ITEMS

    def need(self, n: int, what: str) -> None:
        if n > len(self.body) - self.pos:
            raise _Malformed(
                DecodeReason.TRUNCATED,
                f"{what} needs {n} bytes at offset {self.pos} but the body has {len(self.body) - self.pos} left",
            )

    def varint(self, *, bits: int, what: str) -> int:
        """A zig-zag varint that must fit ``bits`` (32 for int, 64 for long), like Java's decoder."""
        body = self.body
        value = 0
        shift = 0
        start = self.pos
        max_bytes = 5 if bits == 32 else 10
        while True:
            if self.pos >= len(body):
                raise _Malformed(DecodeReason.TRUNCATED, f"{what} at offset {start}: body ends inside a varint")
            byte = body[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if self.pos - start >= max_bytes:
                raise _Malformed(
                    DecodeReason.CORRUPT, f"{what} at offset {start}: varint longer than {max_bytes} bytes"
                )
        if value >> bits:
            raise _Malformed(DecodeReason.CORRUPT, f"{what} at offset {start}: varint overflows {bits} bits")
        return (value >> 1) ^ -(value & 1)


_Scan = Callable[[_Cursor], None]


class _BodyScanner:
    """Walks Avro binary against a writer schema, checking structure without building values."""

    def __init__(self, parsed_schema: Any) -> None:
        # Named types by full name. fastavro's parsed form defines each name before any
        # reference to it (depth-first), so a name is compiled by the time it is used.
        self._compiled: dict[str, _Scan] = {}
        self._min_sizes: dict[str, int] = {}
        self._scan, _ = self._compile(parsed_schema)

    def scan(self, body: bytes, *, schema_id: int) -> None:
        cursor = _Cursor(body)
        try:
            self._scan(cursor)
        except _Malformed as exc:
            raise DecodeError(exc.reason, f"schema id {schema_id}: {exc}", schema_id=schema_id) from None
        except RecursionError:
            raise DecodeError(
                DecodeReason.CORRUPT, f"schema id {schema_id}: record nested too deeply", schema_id=schema_id
            ) from None
        if cursor.pos != len(body):
            raise DecodeError(
                DecodeReason.TRAILING_BYTES,
                f"schema id {schema_id}: {len(body) - cursor.pos} bytes left after a complete record "
                f"({cursor.pos} of {len(body)} bytes read)",
                schema_id=schema_id,
            )

    def _compile(self, node: Any) -> tuple[_Scan, int]:
        """A scan function and the minimum encoded size of a value of this type."""
        if isinstance(node, str):
            if node in self._compiled:
                # a recursive reference still being compiled counts as size 0: a lower bound
                return self._compiled[node], self._min_sizes.get(node, 0)
            return _primitive(node)
        if isinstance(node, list):
            return self._compile_union(node)
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return self._compile_named(node)
        if kind == "array":
            return self._compile_blocks(node["items"], keyed=False)
        if kind == "map":
            return self._compile_blocks(node["values"], keyed=True)
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self._compiled):
            return self._compile(kind)
        return _primitive(kind)

    def _compile_named(self, node: dict[str, Any]) -> tuple[_Scan, int]:
        name = node["name"]
        if name in self._compiled:
            return self._compiled[name], self._min_sizes.get(name, 0)
        kind = node["type"]
        if kind == "enum":
            count = len(node["symbols"])

            def scan_enum(c: _Cursor) -> None:
                index = c.varint(bits=32, what="enum index")
                if not 0 <= index < count:
                    raise _Malformed(DecodeReason.CORRUPT, f"enum index {index} outside 0..{count - 1}")

            self._compiled[name], self._min_sizes[name] = scan_enum, 1
            return scan_enum, 1
        if kind == "fixed":
            size = int(node["size"])

            def scan_fixed(c: _Cursor) -> None:
                c.need(size, f"fixed {name}")
                c.pos += size

            self._compiled[name], self._min_sizes[name] = scan_fixed, size
            return scan_fixed, size

        # record: bind the name first so recursive references find it
        field_scans: list[_Scan] = []

        def scan_record(c: _Cursor) -> None:
            c.depth += 1
            if c.depth > MAX_DEPTH:
                raise _Malformed(DecodeReason.CORRUPT, f"records nested deeper than {MAX_DEPTH} levels")
            for scan_field in field_scans:
                scan_field(c)
            c.depth -= 1

        self._compiled[name] = scan_record
        total = 0
        for record_field in node["fields"]:
            scan_field, size = self._compile(record_field["type"])
            field_scans.append(scan_field)
            total += size
        self._min_sizes[name] = total
        return scan_record, total

    def _compile_union(self, branches: list[Any]) -> tuple[_Scan, int]:
        compiled = [self._compile(b)[0] for b in branches]
        count = len(compiled)

        def scan_union(c: _Cursor) -> None:
            index = c.varint(bits=64, what="union branch index")
            if not 0 <= index < count:
                raise _Malformed(DecodeReason.CORRUPT, f"union branch index {index} outside 0..{count - 1}")
            compiled[index](c)

        return scan_union, 1

    def _compile_blocks(self, item_schema: Any, *, keyed: bool) -> tuple[_Scan, int]:
        scan_item, item_size = self._compile(item_schema)
        scan_key = _primitive("string")[0] if keyed else None
        min_item = item_size + (1 if keyed else 0)
        what = "map" if keyed else "array"

        def scan_blocks(c: _Cursor) -> None:
            c.depth += 1
            if c.depth > MAX_DEPTH:
                raise _Malformed(DecodeReason.CORRUPT, f"{what}s nested deeper than {MAX_DEPTH} levels")
            while True:
                count = c.varint(bits=64, what=f"{what} block count")
                if count == 0:
                    break
                block_end = None
                if count < 0:
                    count = -count
                    size = c.varint(bits=64, what=f"{what} block size")
                    if size < 0:
                        raise _Malformed(DecodeReason.CORRUPT, f"{what} block size {size} is negative")
                    c.need(size, f"{what} block of {size} bytes")
                    block_end = c.pos + size
                if min_item > 0:
                    c.need(count * min_item, f"{what} block of {count} items")
                else:
                    c.zero_width_left -= count
                    if c.zero_width_left < 0:
                        raise _Malformed(
                            DecodeReason.CORRUPT,
                            f"{what} declares {count} items that occupy no bytes "
                            f"(limit {MAX_ZERO_WIDTH_ITEMS} per message)",
                        )
                for _ in range(count):
                    if scan_key is not None:
                        scan_key(c)
                    scan_item(c)
                if block_end is not None and c.pos != block_end:
                    raise _Malformed(
                        DecodeReason.CORRUPT,
                        f"{what} block declared {size} bytes but its items took {c.pos - (block_end - size)}",
                    )
            c.depth -= 1

        return scan_blocks, 1


def _primitive(kind: Any) -> tuple[_Scan, int]:
    if kind == "null":

        def scan_null(c: _Cursor) -> None:
            return None

        return scan_null, 0
    if kind == "boolean":

        def scan_boolean(c: _Cursor) -> None:
            c.need(1, "boolean")
            if c.body[c.pos] > 1:
                raise _Malformed(
                    DecodeReason.CORRUPT, f"boolean byte 0x{c.body[c.pos]:02x} at offset {c.pos} is not 0 or 1"
                )
            c.pos += 1

        return scan_boolean, 1
    if kind in ("int", "long"):
        bits = 32 if kind == "int" else 64

        def scan_integer(c: _Cursor) -> None:
            c.varint(bits=bits, what=kind)

        return scan_integer, 1
    if kind in ("float", "double"):
        width = 4 if kind == "float" else 8

        def scan_floating(c: _Cursor) -> None:
            c.need(width, kind)
            c.pos += width

        return scan_floating, width
    if kind in ("bytes", "string"):
        check_text = kind == "string"

        def scan_sized(c: _Cursor) -> None:
            start = c.pos
            length = c.varint(bits=64, what=f"{kind} length")
            if length < 0:
                raise _Malformed(DecodeReason.CORRUPT, f"{kind} at offset {start} has negative length {length}")
            c.need(length, f"{kind} at offset {start}")
            if check_text:
                try:
                    c.body[c.pos : c.pos + length].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Malformed(
                        DecodeReason.CORRUPT, f"string at offset {start} is not UTF-8 ({exc.reason})"
                    ) from None
            c.pos += length

        return scan_sized, 1
    raise ValueError(f"unknown Avro type {kind!r}")
