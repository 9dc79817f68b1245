"""Canonical JSON, the byte form Matrix hashes and signs.

orjson with sorted keys writes the same bytes as the spec's canonical JSON for every value
Matrix allows, an order of magnitude faster than ``canonicaljson``. It differs only where
the value is not valid canonical JSON: it writes NaN and infinities as ``null``, formats
floats its own way and refuses integers beyond 64 bits. So values are checked first
(:func:`check_json_values`), and the rare value that needs the exact encoder (a float or a
huge integer, legal only before room v6) goes through ``canonicaljson``, which is what
Synapse hashed those events with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import canonicaljson
import orjson

from .errors import NonCanonicalJSON

MAX_SAFE_INT = 2**53 - 1
"""Room v6+ integers must lie in ``[-MAX_SAFE_INT, MAX_SAFE_INT]``."""

_ORJSON_MIN_INT = -(2**63)
_ORJSON_MAX_INT = 2**64 - 1
_SORTED = orjson.OPT_SORT_KEYS
_INF = float("inf")


def check_json_values(value: Any, strict: bool) -> bool:
    """Refuse values canonical JSON cannot carry; return whether the exact encoder is needed.

    ``strict`` is the room v6+ rule: no floats at all, integers within ±(2**53 - 1). Before
    v6 floats and integers of any size are tolerated (the spec asks servers to cope with
    them); the answer is ``True`` when one was seen, so :func:`encode_canonical` knows
    orjson cannot be used. Object keys and string contents are left to the encoder, which
    refuses non-string keys and lone surrogates itself.
    """
    t = type(value)
    stack: list[Iterable[Any]]
    if t is dict:
        stack = [value.values()]
    elif t is list:
        stack = [value]
    else:
        return check_json_values([value], strict)
    exact = False
    while stack:
        for v in stack.pop():
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is int:
                if strict:
                    if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                        raise NonCanonicalJSON(f"integer {v} is outside the canonical JSON range")
                elif not _ORJSON_MIN_INT <= v <= _ORJSON_MAX_INT:
                    exact = True
            elif t is dict:
                stack.append(v.values())
            elif t is list:
                stack.append(v)
            elif t is float:
                if strict:
                    raise NonCanonicalJSON(
                        f"float {v!r} is not allowed in canonical JSON (room version 6+)"
                    )
                if v != v or v == _INF or v == -_INF:
                    raise NonCanonicalJSON(f"{v!r} is not a JSON number")
                exact = True
            else:
                raise NonCanonicalJSON(f"{t.__name__} is not a JSON value")
    return exact


def encode_canonical(value: Any, *, has_float: bool = False) -> bytes:
    """Canonical JSON bytes of ``value``, which must already have passed the value check.

    ``has_float`` is what :func:`check_json_values` answered. Invalid strings (lone
    surrogates), non-string keys and nesting too deep to encode raise
    :class:`NonCanonicalJSON`.
    """
    if not has_float:
        try:
            return orjson.dumps(value, option=_SORTED)
        except TypeError:
            pass  # the exact encoder below either copes (huge integers) or names the problem
    return _encode_exact(value)


def _encode_exact(value: Any) -> bytes:
    _check_keys(value)
    try:
        return canonicaljson.encode_canonical_json(value)
    except UnicodeEncodeError:
        raise NonCanonicalJSON("a string is not valid Unicode (lone surrogate)") from None
    except RecursionError:
        raise NonCanonicalJSON("JSON nested too deeply to encode") from None
    except (TypeError, ValueError) as e:
        raise NonCanonicalJSON(f"value cannot be encoded as canonical JSON: {e}") from None


def _check_keys(value: Any) -> None:
    """The exact encoder would turn non-string keys into strings silently: refuse them."""
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            for k, item in v.items():
                if type(k) is not str:
                    raise NonCanonicalJSON(f"object key {k!r} is not a string")
                stack.append(item)
        elif type(v) is list:
            stack.extend(v)


def canonical_json(value: Any, *, strict: bool = True) -> bytes:
    """Check and encode ``value`` in one call; for values not already checked."""
    return encode_canonical(value, has_float=check_json_values(value, strict))
