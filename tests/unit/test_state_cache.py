"""The shared state cache on its own: what it keeps, in what order it lets go, and its memory."""

from __future__ import annotations

import gc
import tracemalloc

from roomserver.state import StateCache
from roomserver.state.cache import CachedSnapshot
from roomserver.types import StateKeyTuple

BIG = 1 << 40
"""NIDs above Python's small-int cache, so that every cached NID is its own object."""


def block(n: int, first: int = 0) -> tuple[list[int], list[int], list[int]]:
    return [5] * n, list(range(first, first + n)), [BIG + first + i for i in range(n)]


def snapshot(base_nid: int, delta: int = 0) -> CachedSnapshot:
    entries = tuple((StateKeyTuple(5, i), BIG + i) for i in range(delta))
    return CachedSnapshot(1, 12345, 100 + delta, base_nid, entries)


def test_a_snapshot_needs_its_base_block_list() -> None:
    cache = StateCache(max_entries=100)
    cache.add_snapshot(7, snapshot(3, delta=2), [11, 12, 0])
    found = cache.snapshot(7)
    assert found is not None and found[1] == (11, 12, 0) and found[0].base_nid == 3
    assert cache.entries == (1 + 2) + (1 + 3)
    cache.discard(snapshot_nids=[3])  # the base is gone: the delta alone is useless
    assert cache.snapshot(7) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_least_recently_used_go_first_and_the_bound_holds() -> None:
    cache = StateCache(max_entries=3 * 11)
    for nid in range(1, 4):
        cache.add_block(nid, block(10))
    assert cache.entries == 33 and len(cache) == 3
    assert cache.block(1) is not None  # now the most recent
    cache.add_block(4, block(10))
    assert cache.block(2) is None and cache.block(1) is not None and cache.block(4) is not None
    assert cache.entries <= cache.max_entries
    cache.add_block(5, block(40))  # larger than the whole cache: not kept, nothing evicted
    assert cache.block(5) is None and len(cache) == 3


def test_cached_blocks_cannot_be_changed_through_the_caller() -> None:
    cache = StateCache()
    columns = block(3)
    cache.add_block(1, columns)
    columns[2][0] = 0
    cached = cache.block(1)
    assert cached is not None and isinstance(cached[2], tuple) and cached[2][0] == BIG


def test_a_newer_form_of_a_snapshot_replaces_the_cached_one() -> None:
    cache = StateCache()
    cache.add_snapshot(7, snapshot(3, delta=2), [11, 12])
    cache.add_snapshot(7, snapshot(7), [21, 22, 23, 24])  # promoted: now a base
    found = cache.snapshot(7)
    assert found is not None and found[0].base_nid == 7 and found[1] == (21, 22, 23, 24)
    cache.clear()
    assert len(cache) == 0 and cache.entries == 0 and cache.snapshot(7) is None


def test_memory_follows_the_bound() -> None:
    """The blocks of a 20,000-member room (320 buckets of ~64 entries) in a cache bounded to
    5,000 entries: most are let go, and what is kept weighs ~100 bytes an entry."""

    def traced(max_entries: int) -> tuple[int, StateCache]:
        gc.collect()
        tracemalloc.start()
        try:
            cache = StateCache(max_entries=max_entries)
            for nid in range(1, 321):
                cache.add_block(nid, block(63, first=nid * 100))
            gc.collect()
            return tracemalloc.get_traced_memory()[0], cache
        finally:
            tracemalloc.stop()

    small, bounded = traced(5_000)
    large, unbounded = traced(1_000_000)
    assert bounded.entries <= 5_000 and len(bounded) == 5_000 // 64
    assert unbounded.entries == 320 * 64
    assert small < large / 3
    assert small / bounded.entries < 200  # bytes an entry, all included
