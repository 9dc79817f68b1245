"""Compact binary forms of what the storage writes: NID lists, state entries, event JSON.

The same bytes go into PostgreSQL ``BYTEA`` and SQLite ``BLOB`` columns, so both backends store
and decode state identically (and SQLite, which has no arrays, needs no other representation).
The formats are part of the on-disk schema: change them only with a new version byte.

Integer columns use frame-of-reference packing: the smallest value is written once as a varint
and every value as its offset from it in a fixed width of 0, 1, 2, 4 or 8 bytes, so a column of
NIDs that are close together (one room's events, one block's member keys) costs one or two bytes
a value, and decoding is a single ``array.frombytes`` in C.
"""

from __future__ import annotations

import array
import hashlib
import sys
import threading
import zlib
from collections.abc import Sequence
from typing import Literal

import zstandard

from roomserver.types import EventNID, EventStateKeyNID, EventTypeNID

_Typecode = Literal["B", "H", "I", "L", "Q"]
_UNSIGNED: tuple[_Typecode, ...] = ("B", "H", "I", "L", "Q")
_TYPECODES: dict[int, _Typecode] = {}
for _code in _UNSIGNED:
    _TYPECODES.setdefault(array.array(_code).itemsize, _code)
_BIG_ENDIAN = sys.byteorder == "big"

ENTRIES_FORMAT = 1
"""First byte of a packed block of state entries."""


class CodecError(ValueError):
    """Stored bytes that this code cannot decode (corruption, or a newer format)."""


def _width(span: int) -> int:
    if span == 0:
        return 0
    if span < 1 << 8:
        return 1
    if span < 1 << 16:
        return 2
    if span < 1 << 32:
        return 4
    return 8


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    try:
        first = data[pos]
    except IndexError:
        raise CodecError("truncated varint") from None
    if first < 0x80:
        return first, pos + 1
    value = shift = 0
    while True:
        try:
            byte = data[pos]
        except IndexError:
            raise CodecError("truncated varint") from None
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _put_column(out: bytearray, values: Sequence[int]) -> None:
    if not values:
        out.append(0)
        _put_varint(out, 0)
        return
    base = min(values)
    if base < 0:
        raise ValueError("NIDs are never negative")
    width = _width(max(values) - base)
    out.append(width)
    _put_varint(out, base)
    if width:
        column = array.array(_TYPECODES[width], [v - base for v in values] if base else values)
        if _BIG_ENDIAN:
            column.byteswap()
        out += column.tobytes()


def _get_column(data: memoryview, pos: int, count: int) -> tuple[list[int], int]:
    if pos >= len(data):
        raise CodecError("truncated column")
    width = data[pos]
    base, pos = _get_varint(data, pos + 1)
    if width == 0:
        return [base] * count, pos
    typecode = _TYPECODES.get(width)
    if typecode is None:
        raise CodecError(f"bad column width {width}")
    end = pos + width * count
    if end > len(data):
        raise CodecError("truncated column")
    if _BIG_ENDIAN:
        column = array.array(typecode, data[pos:end].tobytes())
        column.byteswap()
        values = column.tolist()
    else:  # one C call: a typed view of the bytes
        values = data[pos:end].cast(typecode).tolist()
    if base:
        values = [v + base for v in values]
    return values, end


def pack_nids(nids: Sequence[int]) -> bytes:
    """An ordered list of NIDs (latest events, auth events, a snapshot's blocks)."""
    out = bytearray()
    _put_varint(out, len(nids))
    _put_column(out, nids)
    return bytes(out)


def unpack_nids(data: bytes | memoryview | None) -> list[int]:
    if not data:
        return []
    view = memoryview(data)
    count, pos = _get_varint(view, 0)
    values, end = _get_column(view, pos, count)
    if end != len(data):
        raise CodecError("trailing bytes after NID list")
    return values


EntryColumns = tuple[list[EventTypeNID], list[EventStateKeyNID], list[EventNID]]
"""State entries as three parallel columns (type NIDs, state key NIDs, event NIDs)."""


def pack_entries(
    types: Sequence[EventTypeNID],
    state_keys: Sequence[EventStateKeyNID],
    events: Sequence[EventNID],
) -> bytes:
    """State entries, given as columns; callers sort them so equal content packs equally."""
    if not len(types) == len(state_keys) == len(events):
        raise ValueError("columns differ in length")
    out = bytearray((ENTRIES_FORMAT,))
    _put_varint(out, len(types))
    _put_column(out, types)
    _put_column(out, state_keys)
    _put_column(out, events)
    return bytes(out)


def unpack_entries(data: bytes | memoryview | None) -> EntryColumns:
    if not data:
        return [], [], []
    if data[0] != ENTRIES_FORMAT:
        raise CodecError(f"unknown state entries format {data[0]}")
    view = memoryview(data)
    count, pos = _get_varint(view, 1)
    types, pos = _get_column(view, pos, count)
    state_keys, pos = _get_column(view, pos, count)
    events, pos = _get_column(view, pos, count)
    if pos != len(data):
        raise CodecError("trailing bytes after state entries")
    return types, state_keys, events


def content_hash(data: bytes) -> bytes:
    """The 128-bit content address of a stored block."""
    return hashlib.blake2b(data, digest_size=16).digest()


# Event JSON is stored compressed against a preset dictionary of the strings every PDU
# repeats (keys, common values, the shape of hashes and signatures). That saves ~35-40% of the
# bytes of a typical event, which is what keeps the whole database near the size of the raw
# PDUs. A stored value starting with "{" is plain JSON (written when compressing did not
# help); one starting with _JSON_ZSTD_V1 is a zstd frame made with _JSON_DICTIONARY_V1 as raw
# content; one starting with _JSON_DEFLATE_V1 (written before zstd) is raw deflate against the
# same dictionary. The dictionary therefore must never change. zstd keeps its dictionary
# loaded in a reused context, where deflate set the dictionary up again for every event: a
# third of the input pipeline's CPU per event was that.
_JSON_DEFLATE_V1 = 0x01
_JSON_ZSTD_V1 = 0x02
_JSON_DICTIONARY_V1 = (
    b'"m.room.third_party_invite""m.room.history_visibility","shared""world_readable"'
    b'"m.room.join_rules","join_rule":"public""invite""m.room.guest_access""can_join"'
    b'"m.room.canonical_alias""m.room.name""m.room.topic""m.room.avatar""m.room.encryption"'
    b'"m.room.redaction","redacts":"$"m.room.create","creator":"@","room_version":"10"'
    b'"m.room.power_levels","ban":50,"events":{},"events_default":0,"invite":0,"kick":50,'
    b'"redact":50,"state_default":50,"users":{"@"},"users_default":0'
    b'"unsigned":{"age_ts":"m.reaction""m.relates_to":{"event_id":"$","rel_type":"m.annotation"'
    b'"m.room.encrypted","algorithm":"m.megolm.v1.aes-sha2","ciphertext":"","device_id":"'
    b'"session_id":"","sender_key":"{"auth_events":["$","$","$"],"content":{"body":"'
    b'","format":"org.matrix.custom.html","formatted_body":"<","msgtype":"m.text"},"depth":'
    b'{"auth_events":["$","$"],"content":{"avatar_url":"mxc://","displayname":"'
    b'","membership":"leave"},"depth":","membership":"join"},"depth":,"hashes":{"sha256":"'
    b'"},"origin":"","origin_server_ts":17,"prev_events":["$"],"room_id":"!'
    b'","sender":"@","signatures":{"":{"ed25519:a_":"'
    b'"}},"state_key":"@","type":"m.room.member"}'
    b'"}},"type":"m.room.message"}'
)


class _Zstd(threading.local):
    """zstd contexts with the dictionary loaded, one set per thread (they are not
    thread-safe; the event loop and aiosqlite's thread may both use them)."""

    def __init__(self) -> None:
        dictionary = zstandard.ZstdCompressionDict(
            _JSON_DICTIONARY_V1, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
        dictionary.precompute_compress(level=1)  # digested once, not at every compress
        self.compressor = zstandard.ZstdCompressor(
            level=1, dict_data=dictionary, write_checksum=False, write_dict_id=False
        )
        self.decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)


_zstd = _Zstd()


def encode_event_json(raw: bytes) -> bytes:
    """The stored form of an event's JSON (UTF-8, starting with ``{``)."""
    packed = _zstd.compressor.compress(raw)
    if len(packed) + 1 >= len(raw):
        return raw
    return bytes((_JSON_ZSTD_V1,)) + packed


def decode_event_json(stored: bytes) -> bytes:
    """The JSON bytes :func:`encode_event_json` was given."""
    if not stored or stored[0] == 0x7B:  # "{"
        return stored
    if stored[0] == _JSON_ZSTD_V1:
        try:
            return _zstd.decompressor.decompress(memoryview(stored)[1:])
        except zstandard.ZstdError as e:
            raise CodecError(f"corrupt event JSON: {e}") from None
    if stored[0] != _JSON_DEFLATE_V1:
        raise CodecError(f"unknown event JSON format {stored[0]}")
    inflater = zlib.decompressobj(-15, _JSON_DICTIONARY_V1)
    try:
        return inflater.decompress(memoryview(stored)[1:]) + inflater.flush()
    except zlib.error as e:
        raise CodecError(f"corrupt event JSON: {e}") from None
