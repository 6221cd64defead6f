"""A call waiting for an agent, as routing sees it: plain facts, no behaviour.

The IVR, the complaint register and the transcription worker fill these facts
in; scoring turns them into points and the waiting line orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

QUEUE = "complaints"
"""The one queue the router serves: the name its SL figures and metrics are kept under."""


class Urgency(StrEnum):
    """How urgent the caller said the matter is (the IVR's urgency menu)."""

    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """One call that wants an agent.

    ``joined_at`` is when the call joined the waiting line (POSIX seconds). A
    call that comes back to the line (an agent did not answer, a callback that
    kept its place) keeps its original ``joined_at`` and so its place.

    ``language`` and ``skill`` pick the agents who can take the call: an agent
    qualifies when it speaks the language and has the skill.
    """

    call_id: str
    joined_at: float
    language: str
    skill: str
    category: str
    urgency: Urgency = Urgency.NORMAL
    vulnerable: bool = False
    open_complaint: bool = False
    recent_call: bool = False
    callback_flag: bool = False
    urgent_words: tuple[str, ...] = ()
    abusive_caller: bool = False
    high_severity: bool = False

    @property
    def hard(self) -> bool:
        """A call an agent should not get twice in a row: an abusive caller or a
        high-severity complaint."""
        return self.abusive_caller or self.high_severity
