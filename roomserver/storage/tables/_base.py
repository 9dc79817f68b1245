"""What every table module shares: the bound connection and batching of long lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from ..database import Connection

T = TypeVar("T")


class Table:
    """A group of related tables' SQL, bound to one connection (in a transaction or not)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(items: Sequence[T]) -> list[T]:
    """``items`` without repeats, first occurrence kept (dict preserves order)."""
    return list(dict.fromkeys(items))
