"""The stored binary formats and the packing rules (pure; no database)."""

from __future__ import annotations

import random
import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomserver.state.packing import (
    Packing,
    add_digest,
    bucket_of,
    entry_digest,
    state_hash,
    sub_digest,
)
from roomserver.storage.codec import _JSON_DICTIONARY_V1 as DICTIONARY
from roomserver.storage.codec import (
    CodecError,
    decode_event_json,
    encode_event_json,
    pack_entries,
    pack_nids,
    unpack_entries,
    unpack_nids,
)

nids = st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=50)


@given(nids)
def test_nid_lists_round_trip(values: list[int]) -> None:
    assert unpack_nids(pack_nids(values)) == values


@given(nids, st.data())
def test_entries_round_trip(events: list[int], data: st.DataObject) -> None:
    n = len(events)
    types = data.draw(st.lists(st.integers(0, 2**31), min_size=n, max_size=n))
    keys = data.draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
    assert unpack_entries(pack_entries(types, keys, events)) == (types, keys, events)


def test_close_nids_pack_small() -> None:
    # One room's members: state key NIDs and event NIDs close together -> 2 bytes each.
    keys = list(range(100_000, 100_020))
    events = list(range(5_000_000, 5_000_040, 2))
    packed = pack_entries([5] * 20, keys, events)
    assert len(packed) < 20 * 3 + 16  # type column free, 1 byte per key, 1 per event
    assert unpack_entries(packed) == ([5] * 20, keys, events)
    assert len(pack_nids([1, 2, 3])) == 6  # count, width, base, 3 x 1 byte
    assert pack_nids([]) != b"" and unpack_nids(pack_nids([])) == []


def test_empty_and_corrupt_data() -> None:
    assert unpack_nids(b"") == []
    assert unpack_entries(b"") == ([], [], [])
    with pytest.raises(CodecError):
        unpack_entries(b"\x07\x01")  # unknown format
    good = pack_entries([1, 2], [3, 4], [5, 600])
    with pytest.raises(CodecError):
        unpack_entries(good[:-1])
    with pytest.raises(CodecError):
        unpack_nids(pack_nids([1, 2, 3]) + b"\x00")
    with pytest.raises(ValueError):
        pack_nids([-1])


def test_event_json_is_compressed_and_round_trips() -> None:
    pdu = {
        "auth_events": ["$" + "a" * 43, "$" + "b" * 43, "$" + "c" * 43],
        "content": {"body": "hello there", "msgtype": "m.text"},
        "depth": 12,
        "hashes": {"sha256": "x" * 43},
        "origin_server_ts": 1700000000000,
        "prev_events": ["$" + "d" * 43],
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "signatures": {"example.org": {"ed25519:a_abc": "s" * 86}},
        "type": "m.room.message",
    }
    raw = orjson.dumps(pdu, option=orjson.OPT_SORT_KEYS)
    stored = encode_event_json(raw)
    assert len(stored) < 0.8 * len(raw)
    assert decode_event_json(stored) == raw
    tiny = b"{}"
    assert encode_event_json(tiny) == tiny  # not worth deflating: stored as is
    assert decode_event_json(tiny) == tiny
    with pytest.raises(CodecError):
        decode_event_json(b"\x02garbage")
    with pytest.raises(CodecError):
        decode_event_json(b"\x01garbage")
    with pytest.raises(CodecError):
        decode_event_json(b"\x03garbage")


def test_event_json_written_by_earlier_versions_stays_readable() -> None:
    # Deflate against the dictionary (format 1) was written before zstd (format 2).
    raw = b'{"content":{"body":"hello there","msgtype":"m.text"},"type":"m.room.message"}'
    deflater = zlib.compressobj(6, zlib.DEFLATED, -12, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    assert decode_event_json(b"\x01" + deflater.compress(raw) + deflater.flush()) == raw
    assert encode_event_json(raw)[0] == 2


def test_bucket_function_is_stable() -> None:
    # The bucket of a key is part of the stored format: these values must never change.
    assert bucket_of(1, 1, 1) == 0
    assert [bucket_of(5, k, 1024) for k in (2, 3, 4, 1000)] == [1023, 523, 537, 145]
    for key in range(1, 200):
        b = bucket_of(5, key, 512)
        assert 0 <= b < 512
        assert bucket_of(5, key, 256) == b >> 1  # doubling splits buckets in two


def test_buckets_spread_keys_evenly() -> None:
    counts = [0] * 64
    for key in range(2, 6402):
        counts[bucket_of(5, key, 64)] += 1
    assert max(counts) < 2 * 100 and min(counts) > 100 // 2


def test_state_hash_is_a_multiset_sum() -> None:
    rng = random.Random(4)
    entries = [
        (rng.randrange(1, 30), rng.randrange(1, 10_000), rng.randrange(1, 10**9))
        for _ in range(200)
    ]
    whole = state_hash(entries)
    assert whole == state_hash(reversed(entries))  # order does not matter
    changed = [*entries[:-1], (entries[-1][0], entries[-1][1], 7)]
    incremental = add_digest(
        sub_digest(whole, entry_digest(*entries[-1])), entry_digest(*changed[-1])
    )
    assert incremental == state_hash(changed)
    assert state_hash([]) == 0
    assert entry_digest(1, 2, 3) != entry_digest(1, 3, 2)


def test_packing_bounds() -> None:
    p = Packing(bucket_target=16, max_delta=24)
    assert p.buckets_for(0) == 1
    assert p.buckets_for(16) == 1
    assert p.buckets_for(17) == 2
    assert p.buckets_for(10_000) == 1024
    assert not p.needs_resize(1024, 10_000)
    assert p.needs_resize(1024, 16 * 1024 + 1)  # grew past the target
    assert p.needs_resize(1024, 1000)  # shrank below an eighth
    assert not p.needs_resize(1, 0)
