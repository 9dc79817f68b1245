"""The input pipeline: events into the room DAG, authorised, with the state at each one."""

from .pipeline import Input
from .types import EventResult, InputEvent, InputKind, InviteInput, Outcome, TransactionRef

__all__ = [
    "EventResult",
    "Input",
    "InputEvent",
    "InputKind",
    "InviteInput",
    "Outcome",
    "TransactionRef",
]
