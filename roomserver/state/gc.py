"""Garbage collection of state snapshots and blocks that nothing references any more.

Snapshots are live when an event (the state before it) or a room (its current state) names
them, and so are the bases they build on; blocks are live when a live base lists them. The
rest is garbage: left behind by purged events, by current-state snapshots a room moved on
from, or by bases that a later write turned into duplicates.

The sweep runs in one transaction that first takes the state lock exclusively, so it waits
for every transaction writing state and keeps new ones out until it commits (see
:mod:`roomserver.storage.tables.state`): a snapshot that an unfinished transaction is about to
reference cannot be collected.

Another process's :class:`~roomserver.state.cache.StateCache` may still hold collected rows;
why that is harmless is explained there. The collector's own process can pass its cache to
drop them.
"""

from __future__ import annotations

from dataclasses import dataclass

from roomserver.storage import Storage
from roomserver.types import StateBlockNID, StateSnapshotNID

from .cache import StateCache

_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class GarbageReport:
    snapshots: int
    """Unreferenced snapshots found (and removed, unless a dry run)."""
    blocks: int
    """Unreferenced blocks found (and removed, unless a dry run)."""
    live_snapshots: int
    live_blocks: int
    removed: bool


async def collect_garbage(
    storage: Storage, *, dry_run: bool = False, cache: StateCache | None = None
) -> GarbageReport:
    """Find, and unless ``dry_run`` delete, unreferenced snapshots and blocks (and drop them
    from ``cache`` once deleted)."""
    async with storage.transaction() as tx:
        await tx.state.lock_for_gc()
        roots = await tx.state.referenced_snapshot_nids()
        bases: dict[StateSnapshotNID, StateSnapshotNID] = {}
        own_blocks: dict[StateSnapshotNID, list[StateBlockNID]] = {}
        after = 0
        while page := await tx.state.snapshot_links(after, _PAGE):
            for nid, base, blocks in page:
                bases[nid] = base
                if base == 0:
                    own_blocks[nid] = blocks
            after = page[-1][0]
        live = {nid for nid in roots if nid in bases}
        live |= {bases[nid] for nid in live if bases[nid]}
        live_blocks = {b for nid in live for b in own_blocks.get(nid, ()) if b}
        dead_snapshots = sorted(nid for nid in bases if nid not in live)
        dead_blocks: list[StateBlockNID] = []
        after = 0
        while block_page := await tx.state.block_nids_page(after, _PAGE):
            dead_blocks.extend(b for b in block_page if b not in live_blocks)
            after = block_page[-1]
        if not dry_run:
            await tx.state.delete_snapshots(dead_snapshots)
            await tx.state.delete_blocks(dead_blocks)
    if cache is not None and not dry_run:
        cache.discard(dead_snapshots, dead_blocks)
    return GarbageReport(
        snapshots=len(dead_snapshots),
        blocks=len(dead_blocks),
        live_snapshots=len(live),
        live_blocks=len(live_blocks),
        removed=not dry_run,
    )
