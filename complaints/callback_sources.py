"""Where callback flags come from in the running daemon: routing's events and the IVR's outcomes.

- an abandon after the short-abandon threshold (``CallAbandoned``);
- an IVR callback request, and a waiting caller pressing 1 for a callback:
  both keep the caller's place, so the flag is due when their turn would
  have come, estimated from their place in line and the recent answer rate
  (:func:`routing.callbacks.estimate_turn_due`);
- a voicemail (from the IVR or pressed 2 while waiting), with the recording's
  id as the reason's source, so the transcription worker's text lands on it
  later (``CallbackStore.attach_transcript``).

Each source logs and drops what cannot be a flag (an anonymous caller), never
raises into the event dispatch. With a journal (:mod:`shenava.journal`) every
reason is kept on this host until Redis has it: a flag is never lost to a slow,
full or absent Redis; each journal entry carries an operation id so a replay
raises it once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from ivr.machine import Outcome
from routing.callback_store import (
    CallbackStore,
    ConcurrentUpdateError,
    reason_from_dict,
    reason_to_dict,
)
from routing.callbacks import (
    CallbackError,
    CallbackFlag,
    Reason,
    ReasonKind,
    abandon_reason,
    estimate_turn_due,
    ivr_request_reason,
    voicemail_reason,
)
from routing.events import CallAbandoned, CallAnswered, CallLeftForChoice, RoutingEvent
from shenava_base.aio import as_deferred
from shenava_base.clock import Clock
from shenava_base.journal import call_key, number_key
from shenava_base.privacy import mask_number

log = Logger()

JOURNAL_KIND = "callback.reason"
ANSWER_RATE_WINDOW_S = 900.0
"""How far back the line's pace is measured (the wallboard's 15-minute interval)."""


class AnswerRate:
    """Calls answered recently, from ``CallAnswered`` events: the pace of the line."""

    def __init__(self, window_s: float = ANSWER_RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._answers: deque[float] = deque()

    def on_event(self, event: RoutingEvent) -> None:
        if isinstance(event, CallAnswered):
            self._answers.append(event.at)

    def answers(self, now: float) -> int:
        while self._answers and self._answers[0] < now - self.window_s:
            self._answers.popleft()
        return len(self._answers)

    def turn_due(self, now: float, position: int) -> float:
        return estimate_turn_due(now, position, self.answers(now), self.window_s)


class CallbackSources:
    def __init__(
        self,
        store: CallbackStore,
        clock: Clock,
        *,
        waiting_calls: Callable[[], int],
        rate: AnswerRate,
        on_raised: Callable[[CallbackFlag], object] | None = None,
        journal: Any | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._waiting_calls = waiting_calls
        self._rate = rate
        self._on_raised = on_raised
        self._in_flight: set[Deferred[Any]] = set()
        self._journal = journal
        if journal is not None:
            journal.register(JOURNAL_KIND, self._apply_entry)

    # -- routing events ------------------------------------------------------------

    def on_routing_event(self, event: RoutingEvent) -> None:
        self._rate.on_event(event)
        if isinstance(event, CallAbandoned):
            reason = abandon_reason(
                event.call_id, event.at, event.at - event.joined_at, self._store.policy
            )
            if reason is not None:
                self.raise_reason(event.caller_number, reason)

    def on_hold_choice(self, event: CallLeftForChoice, recording: str | None) -> Deferred[Any] | None:
        """A waiting caller pressed 1 (callback, keeping their place) or 2 (voicemail)."""
        if event.choice == "callback":
            position = event.position or self._waiting_calls() + 1
            due = self._rate.turn_due(event.at, position)
            return self.raise_reason(event.caller_number, ivr_request_reason(event.call_id, event.at, due))
        if recording is not None:
            return self.raise_reason(event.caller_number, voicemail_reason(recording, event.at))
        return None

    # -- IVR outcomes ---------------------------------------------------------------

    def on_ivr_callback(self, outcome: Outcome, channel: str) -> Deferred[Any]:
        """The caller asked for a callback in the IVR instead of joining the line."""
        now = self._clock.seconds()
        due = self._rate.turn_due(now, self._waiting_calls() + 1)
        number = outcome.callback_number or outcome.caller_number
        return self.raise_reason(number, ivr_request_reason(outcome.call_id, now, due))

    def on_ivr_voicemail(self, outcome: Outcome, channel: str) -> Deferred[Any] | None:
        if outcome.recording is None:
            return None
        now = self._clock.seconds()
        number = outcome.callback_number or outcome.caller_number
        return self.raise_reason(number, voicemail_reason(outcome.recording, now))

    async def voicemail_flagged(self, number: str, recording: str) -> bool:
        """Whether the IVR voicemail recorded as ``recording`` has its flag reason
        already (kept in the journal, a previous run's entries included, or in
        Redis): raised only once the recording was over and handed on."""
        if self._journal is not None and any(
            (p.get("reason") or {}).get("kind") == ReasonKind.VOICEMAIL.value
            and (p.get("reason") or {}).get("source") == recording
            for p in self._journal.pending(JOURNAL_KIND, call_key(recording))
        ):
            return True
        if not number:
            return False
        try:
            flag = await self._store.open_flag_for(number)
        except CallbackError:
            return False
        return flag is not None and any(
            r.kind is ReasonKind.VOICEMAIL and r.source == recording for r in flag.reasons
        )

    # -- raising ----------------------------------------------------------------------

    def settled(self) -> Deferred[Any]:
        """Fires when every flag being raised is stored (tests, shutdown)."""
        return DeferredList(list(self._in_flight), consumeErrors=True)

    def raise_reason(self, number: str, reason: Reason) -> Deferred[Any]:
        if self._journal is not None:
            entry = {
                "number": number, "reason": reason_to_dict(reason), "now": self._clock.seconds(),
                "op": uuid4().hex,
            }
            d = self._journal.submit(JOURNAL_KIND, entry, (number_key(number), call_key(reason.source)))
        else:
            d = as_deferred(self._raise(number, reason))
        self._in_flight.add(d)

        def done(result: object) -> object:
            self._in_flight.discard(d)
            return result

        d.addBoth(done)
        d.addErrback(
            lambda f: log.failure(
                "callback flag ({kind}) for {caller} not raised", f, kind=reason.kind.value,
                caller=mask_number(number),
            )
        )
        return d

    def _apply_entry(self, entry: dict[str, Any]) -> Deferred[Any]:
        reason = reason_from_dict(entry["reason"])
        return as_deferred(self._raise(entry["number"], reason, entry["now"], entry["op"]))

    async def _raise(
        self, number: str, reason: Reason, now: float | None = None, op_id: str | None = None
    ) -> CallbackFlag | None:
        try:
            flag = await self._store.raise_reason(
                number, reason, self._clock.seconds() if now is None else now, op_id=op_id
            )
        except ConcurrentUpdateError:
            raise  # not a reason to drop it: the journal (or the caller) tries again
        except CallbackError as exc:
            log.info(
                "no callback flag ({kind}) for {caller}: {error}", kind=reason.kind.value,
                caller=mask_number(number), error=str(exc),
            )
            return None
        if flag is None:
            return None  # a journal replay of a reason already raised
        log.info(
            "callback flag {flag} for {caller}: {kind}, due in {due:.0f} s", flag=flag.flag_id,
            caller=mask_number(flag.number), kind=reason.kind.value,
            due=max(0.0, reason.due_at - reason.raised_at),
        )
        if self._on_raised is not None:
            self._on_raised(flag)
        return flag
