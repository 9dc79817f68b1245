"""The roomserver's tables, written once over the :class:`~..database.Connection` protocol.

:class:`Tables` binds every table group to one connection; ``Storage.transaction()`` and
``Storage.read()`` hand one out. Each group lives in its own module with its SQL.
"""

from __future__ import annotations

from ..database import Connection
from .aliases import RoomAliases
from .events import EventInfo, Events, NewEvent
from .graph import PreviousEvents
from .input_io import InputConflict, InputIO, InputWrite, Prepared, RoomUpdate
from .members import InviteInfo, Invites, MembershipInfo, Memberships
from .nids import EventStateKeys, EventTypes, NIDCache
from .output_log import OutputLog, OutputRow
from .redactions import RedactionInfo, Redactions
from .rooms import RoomInfo, Rooms
from .state import NewSnapshot, SnapshotRow, StateTables
from .transactions import Transactions

__all__ = [
    "EventInfo",
    "EventStateKeys",
    "EventTypes",
    "Events",
    "InputConflict",
    "InputIO",
    "InputWrite",
    "InviteInfo",
    "Invites",
    "MembershipInfo",
    "Memberships",
    "NIDCache",
    "NewEvent",
    "NewSnapshot",
    "OutputLog",
    "OutputRow",
    "Prepared",
    "PreviousEvents",
    "RedactionInfo",
    "Redactions",
    "RoomAliases",
    "RoomInfo",
    "RoomUpdate",
    "Rooms",
    "SnapshotRow",
    "StateTables",
    "Tables",
    "Transactions",
]


class Tables:
    """Every table group, bound to one connection (inside a transaction, or not)."""

    __slots__ = (
        "aliases",
        "conn",
        "event_state_keys",
        "event_types",
        "events",
        "in_transaction",
        "input",
        "invites",
        "memberships",
        "output",
        "previous_events",
        "redactions",
        "rooms",
        "state",
        "transactions",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        in_transaction: bool,
        event_type_cache: NIDCache,
        state_key_cache: NIDCache,
    ) -> None:
        self.conn = conn
        self.in_transaction = in_transaction
        committed = not in_transaction
        self.rooms = Rooms(conn)
        self.event_types = EventTypes(conn, event_type_cache, committed=committed)
        self.event_state_keys = EventStateKeys(conn, state_key_cache, committed=committed)
        self.events = Events(conn)
        self.previous_events = PreviousEvents(conn)
        self.state = StateTables(conn)
        self.memberships = Memberships(conn)
        self.invites = Invites(conn)
        self.aliases = RoomAliases(conn)
        self.transactions = Transactions(conn)
        self.redactions = Redactions(conn)
        self.output = OutputLog(conn)
        self.input = InputIO(conn)
