"""Canonical JSON, the byte form Matrix hashes and signs.

orjson with sorted keys writes the same bytes as the spec's canonical JSON for every value
Matrix allows, an order of magnitude faster than ``canonicaljson``. It differs only where the
value is not valid Matrix JSON (NaN, floats, integers beyond 64 bits), so values are checked
first and the rare float-carrying event of an old room version goes through ``canonicaljson``.
"""

from __future__ import annotations

from typing import Any

import canonicaljson
import orjson

from .errors import NonCanonicalJSON

MAX_SAFE_INT = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS


def check_json_values(value: Any, strict: bool) -> bool:
    """Refuse values canonical JSON cannot carry; return whether a float was seen.

    ``strict`` is the room v6+ rule: no floats at all, integers within ±(2**53 - 1).
    """
    stack = [value]
    has_float = False
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if strict and not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                raise NonCanonicalJSON(f"integer {v} is outside the canonical JSON range")
        elif t is dict:
            for k, item in v.items():
                if type(k) is not str:
                    raise NonCanonicalJSON(f"object key {k!r} is not a string")
                stack.append(item)
        elif t is list:
            stack.extend(v)
        elif t is float:
            if strict:
                raise NonCanonicalJSON(f"float {v!r} is not allowed in canonical JSON")
            if v != v or v in (float("inf"), float("-inf")):
                raise NonCanonicalJSON(f"{v!r} is not a JSON number")
            has_float = True
        else:
            raise NonCanonicalJSON(f"{t.__name__} is not a JSON value")
    return has_float


def encode_canonical(value: Any, *, has_float: bool = False) -> bytes:
    """Canonical JSON bytes of ``value``, which must already have passed ``check_json_values``."""
    if has_float:
        return canonicaljson.encode_canonical_json(value)
    try:
        return orjson.dumps(value, option=_SORTED)
    except TypeError:
        # Integers beyond 64 bits (only legal before room v6): canonicaljson handles them.
        return canonicaljson.encode_canonical_json(value)


def canonical_json(value: Any, *, strict: bool = True) -> bytes:
    """Check and encode ``value`` in one call; for values not already checked."""
    return encode_canonical(value, has_float=check_json_values(value, strict))
