"""Per-event cost of the PDU hot path against the library calls it is made of.

    python bench/events.py [--runs 7] [--loops 2000]

For a typical message event and a member join in a room v10 and a room v12, times our
steps (parse+validate, content hash, event ID, sign, verify) and, on the same inputs,
only the library calls each step makes (orjson canonical encoding, hashlib.sha256,
binascii base64, nacl sign/verify), and prints µs per event (median of ``--runs`` runs of
``--loops`` calls) and the ratio ours/library. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import binascii
import gc
import hashlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version as dist_version
from typing import Any

import canonicaljson
import nacl.signing
import orjson
from _machine import cpu_model
from signedjson.key import decode_signing_key_base64, get_verify_key
from unpaddedbase64 import decode_base64, encode_base64

from roomserver.matrix.builder import EventBuilder, room_id_for
from roomserver.matrix.events import Event, parse_pdu
from roomserver.matrix.hashing import compute_event_id, content_hash
from roomserver.matrix.redaction import signed_form
from roomserver.matrix.room_versions import V10, V12, RoomVersion
from roomserver.matrix.signing import (
    ServerKey,
    server_key_of,
    sign_event,
    verify_event_signatures,
)

SERVER = "example.org"
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"  # the spec's test key, for repeatability
SORTED = orjson.OPT_SORT_KEYS


def _room(version: RoomVersion) -> dict[str, Event]:
    """A small room with the auth events a message and a join cite in real rooms."""
    key = decode_signing_key_base64("ed25519", "1", SEED)
    b = EventBuilder(SERVER, key)
    alice = f"@alice:{SERVER}"
    ts = 1_700_000_000_000
    create = b.build(
        version,
        type="m.room.create",
        sender=alice,
        state_key="",
        content={"room_version": version.identifier, "creator": alice},
        room_id=None if version.room_id_from_create_event else f"!bench:{SERVER}",
        origin_server_ts=ts,
    )
    room_id = room_id_for(create) if version.room_id_from_create_event else f"!bench:{SERVER}"
    implied = [] if version.room_id_from_create_event else [create]
    join = b.build(version, type="m.room.member", sender=alice, state_key=alice,
                   content={"membership": "join", "displayname": "Alice"}, room_id=room_id,
                   prev_events=[create], auth_events=implied, origin_server_ts=ts + 1)  # fmt: skip
    pl = b.build(version, type="m.room.power_levels", sender=alice, state_key="",
                 content={"users": {alice: 100}, "users_default": 0, "events_default": 0,
                          "state_default": 50, "ban": 50, "kick": 50, "redact": 50},
                 room_id=room_id, prev_events=[join], auth_events=[*implied, join],
                 origin_server_ts=ts + 2)  # fmt: skip
    jr = b.build(version, type="m.room.join_rules", sender=alice, state_key="",
                 content={"join_rule": "public"}, room_id=room_id, prev_events=[pl],
                 auth_events=[*implied, join, pl], origin_server_ts=ts + 3)  # fmt: skip
    bob = f"@bob:{SERVER}"
    member = b.build(version, type="m.room.member", sender=bob, state_key=bob,
                     content={"membership": "join", "displayname": "Bob",
                              "avatar_url": "mxc://example.org/SEsfnsuifSDFSSEF"},
                     room_id=room_id, prev_events=[jr], auth_events=[*implied, pl, jr],
                     origin_server_ts=ts + 4)  # fmt: skip
    message = b.build(version, type="m.room.message", sender=alice,
                      content={"msgtype": "m.text", "body": "Hello, world! " * 8,
                               "m.mentions": {"user_ids": [bob]}},
                      room_id=room_id, prev_events=[member], auth_events=[*implied, pl, join],
                      origin_server_ts=ts + 5)  # fmt: skip
    return {"message": message, "member": member}


def _time(fn: Callable[[], Any], runs: int, loops: int) -> float:
    """Median µs per call over ``runs`` runs of ``loops`` calls (GC off while timing)."""
    for _ in range(loops // 10 + 1):
        fn()
    samples = []
    gc.disable()
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            for _ in range(loops):
                fn()
            samples.append((time.perf_counter_ns() - start) / loops / 1000)
    finally:
        gc.enable()
    return statistics.median(samples)


def _rows(event: Event, runs: int, loops: int) -> list[tuple[str, float, float]]:
    version = event.room_version
    pdu = event.pdu
    key = decode_signing_key_base64("ed25519", "1", SEED)
    vk = get_verify_key(key)
    keys = {(SERVER, "ed25519:1"): server_key_of(key)}

    def key_for(server: str, kid: str) -> ServerKey | None:
        return keys.get((server, kid))

    to_sign = dict(pdu)

    # The library calls, on inputs prepared outside the timing.
    body = {k: v for k, v in pdu.items() if k not in ("hashes", "signatures", "unsigned")}
    signed = signed_form(pdu, version)
    signed_bytes = orjson.dumps(signed, option=SORTED)
    sig = decode_base64(pdu["signatures"][SERVER]["ed25519:1"])
    nacl_key: nacl.signing.SigningKey = key  # type: ignore[assignment]
    nacl_vk: nacl.signing.VerifyKey = vk  # type: ignore[assignment]

    def lib_content_hash() -> Any:
        return binascii.b2a_base64(
            hashlib.sha256(orjson.dumps(body, option=SORTED)).digest(), newline=False
        )

    def lib_event_id() -> Any:
        return binascii.b2a_base64(
            hashlib.sha256(orjson.dumps(signed, option=SORTED)).digest(), newline=False
        )

    def lib_parse() -> Any:
        return lib_content_hash(), lib_event_id()

    def lib_sign() -> Any:
        return encode_base64(nacl_key.sign(orjson.dumps(signed, option=SORTED)).signature)

    def lib_verify() -> Any:
        return nacl_vk.verify(signed_bytes, decode_base64(pdu["signatures"][SERVER]["ed25519:1"]))

    assert nacl_vk.verify(signed_bytes, sig)
    parsed = parse_pdu(pdu, version)
    verify_event_signatures(parsed, key_for)

    return [
        ("parse+validate", _time(lambda: parse_pdu(pdu, version), runs, loops),
         _time(lib_parse, runs, loops)),
        ("content hash", _time(lambda: content_hash(pdu, has_float=False), runs, loops),
         _time(lib_content_hash, runs, loops)),
        ("event ID", _time(lambda: compute_event_id(pdu, version, has_float=False), runs, loops),
         _time(lib_event_id, runs, loops)),
        ("sign", _time(lambda: sign_event(to_sign, version, SERVER, key), runs, loops // 4),
         _time(lib_sign, runs, loops // 4)),
        ("verify", _time(lambda: verify_event_signatures(parsed, key_for), runs, loops // 4),
         _time(lib_verify, runs, loops // 4)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--loops", type=int, default=2000)
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()}, orjson {dist_version('orjson')}, "
        f"canonicaljson {dist_version('canonicaljson')}, PyNaCl {dist_version('pynacl')}, "
        f"signedjson {dist_version('signedjson')}"
    )
    print(f"{cpu_model()}, {os.cpu_count()} cores; median of {args.runs} runs, µs per event\n")
    header = f"| {'room':<4} | {'event':<15} | {'step':<14} | {'ours':>7} | {'library':>7} | {'ratio':>5} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    hot_ours = hot_lib = 0.0
    for version in (V10, V12):
        for name, event in _room(version).items():
            label = f"{name} ({len(orjson.dumps(event.pdu))} B)"
            rows = _rows(event, args.runs, args.loops)
            for step, ours, lib in rows:
                print(
                    f"| v{version.identifier:<3} | {label:<15} | {step:<14} | {ours:7.2f} |"
                    f" {lib:7.2f} | {ours / lib:5.2f} |"
                )
                if step in ("parse+validate", "verify"):
                    hot_ours += ours
                    hot_lib += lib
    print(
        f"\nreceive path (parse+validate+verify, all four events): ours {hot_ours:.1f} µs,"
        f" library {hot_lib:.1f} µs, ratio {hot_ours / hot_lib:.2f}"
    )
    sample = _room(V10)["message"].pdu
    cj = _time(lambda: canonicaljson.encode_canonical_json(sample), args.runs, args.loops)
    oj = _time(lambda: orjson.dumps(sample, option=SORTED), args.runs, args.loops)
    print(
        f"for scale: canonicaljson encodes the v10 message in {cj:.2f} µs, orjson in {oj:.2f} µs"
        f" ({len(orjson.dumps(sample))} bytes)"
    )


if __name__ == "__main__":
    main()
