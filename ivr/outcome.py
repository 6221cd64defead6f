"""What the IVR hands on when its part of a call ends: the caller's request and answers.

:class:`Outcome` is the one object that leaves the IVR (to routing, the
complaint register, the voicemail intake); :class:`Request` is what the caller
asked for, named by the menu file's ``request`` keys. Both live here, below the
menu schema, the machine and the errors that carry an outcome, so none of
those import each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EndReason", "Outcome", "Request"]


class Request(StrEnum):
    """What the caller asked for; where the call goes after the IVR."""

    AGENT = "agent"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    STATUS = "status"
    HUNG_UP_IN_IVR = "hung_up_in_ivr"


class EndReason(StrEnum):
    """How the IVR part of the call ended."""

    COMPLETED = "completed"
    HUNG_UP = "hung_up"
    TIMEOUTS = "timeouts"
    INVALID_INPUT = "invalid_input"
    INPUT_LIMIT = "input_limit"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller said in the IVR, and what they asked for; handed on to routing."""

    call_id: str
    caller_number: str
    language: str
    requested: Request
    ended: EndReason
    path: tuple[str, ...]
    started_at: float
    ended_at: float
    category: str | None = None
    urgent: bool | None = None
    vulnerable: bool = False
    care: str | None = None
    account: str | None = None
    reference: str | None = None
    callback_number: str | None = None
    recording: str | None = None
    complaint_status: str | None = None
