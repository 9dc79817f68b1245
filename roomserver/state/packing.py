"""How room state is cut into stored pieces: hash buckets, deltas, and the state hash.

A *base* snapshot splits the state into ``2**k`` buckets by a hash of each entry's
``(type NID, state key NID)`` and stores one content-addressed block per bucket. Any other
snapshot is a base plus a small *delta* (at most :attr:`Packing.max_delta` entries) kept
inline in its own row. A state change thus writes one snapshot row holding the delta; once
the delta outgrows its bound, the next snapshot becomes a new base that rewrites only the
buckets the delta touched and reuses every other block of the old base. Reading the whole
state at any snapshot is always two queries (the snapshot row joined to its base's block
list, then the blocks), and reading a few keys reads only their buckets.

The bucket function and the state hash are part of the stored format: never change them.
docs/storage.md explains the choice of parameters with the measured figures.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from roomserver.types import EventNID, EventStateKeyNID, EventTypeNID

_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
_PACK3 = struct.Struct("<QQQ").pack


@dataclass(frozen=True, slots=True)
class Packing:
    """Tunable bounds of the layout (not part of the format: readers need none of them)."""

    bucket_target: int = 64
    """Average entries per bucket a new base aims for; a base is re-bucketed when the state
    grows past ``bucket_target`` entries a bucket, or shrinks below an eighth of it."""
    max_delta: int = 24
    """Entries a snapshot may carry over its base before the next change rebases."""

    def buckets_for(self, entries: int) -> int:
        """The bucket count (a power of two) for a state of ``entries`` entries."""
        needed = -(-entries // self.bucket_target)
        return 1 << (needed - 1).bit_length() if needed > 1 else 1

    def needs_resize(self, buckets: int, entries: int) -> bool:
        if entries > buckets * self.bucket_target:
            return True
        return buckets > 1 and entries * 8 < buckets * self.bucket_target


DEFAULT_PACKING = Packing()


def bucket_of(type_nid: EventTypeNID, state_key_nid: EventStateKeyNID, buckets: int) -> int:
    """The bucket of a key among ``buckets`` (a power of two): the top bits of a 64-bit mix,
    so that doubling the bucket count splits every bucket in two."""
    if buckets == 1:
        return 0
    x = (type_nid * 0x9E3779B97F4A7C15 + state_key_nid * 0xC2B2AE3D27D4EB4F) & _M64
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 29
    return x >> (65 - buckets.bit_length())


def entry_digest(
    type_nid: EventTypeNID, state_key_nid: EventStateKeyNID, event_nid: EventNID
) -> int:
    """One entry's share of the state hash (128 bits of BLAKE2b)."""
    digest = hashlib.blake2b(_PACK3(type_nid, state_key_nid, event_nid), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def state_hash(entries: Iterable[tuple[EventTypeNID, EventStateKeyNID, EventNID]]) -> int:
    """The multiset hash of a whole state: the sum of its entries' digests mod 2**128.

    A sum can be updated by a change in time proportional to the change (subtract the old
    entry's digest, add the new one's), which is what lets a snapshot derived from another
    be content-addressed without reading the whole state.
    """
    total = 0
    for t, s, e in entries:
        total += entry_digest(t, s, e)
    return total & _M128


def add_digest(total: int, digest: int) -> int:
    return (total + digest) & _M128


def sub_digest(total: int, digest: int) -> int:
    return (total - digest) & _M128


def hash_bytes(total: int) -> bytes:
    return total.to_bytes(16, "big")


def hash_int(data: bytes) -> int:
    return int.from_bytes(data, "big")
