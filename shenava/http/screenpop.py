"""The screen pop: what an agent sees of a call before speaking.

:class:`CallMemory` keeps the IVR outcome of each call that wants an agent
(language, category, urgency, vulnerable/care, account or reference, the
caller's number), keyed by call id, from the moment the IVR hands the call on
until the call ends (hang-up, abandon, completion, or a choice to leave a
voicemail or be called back). It is bounded, so a missed end event cannot
grow it without limit.

:func:`screen_pop` joins that with what routing knows (urgency raised by the
caller's history, waiting time) and, when the complaint register runs in
this daemon, the caller's earlier complaints, the complaint opened for this
call and its transcript, and abuse reports the next agent should see. The
caller's number is masked for agents, full for supervisors and admins
(docs/complaints.md, "Roles and privacy").

A callback the agent is dialling (``callback:<flag id>``, the agent's current
call) has no IVR outcome: its number, why the customer is called back, the
attempt and the voicemail transcripts come from the callback flag (the dialler's
memory of the dial if Redis cannot be asked), so the agent sees whom they are
calling back, masked as any number on the desk.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from twisted.logger import Logger

from ami_bridge.events import ChannelHungUp, TrackerEvent
from complaints.roles import Actor, Role
from ivr.machine import Outcome
from ivr.menu_schema import Request
from routing.callback_dialer import CALL_ID_PREFIX as CALLBACK_CALL_PREFIX
from routing.calls import WaitingCall
from routing.events import CallAbandoned, CallCompleted, CallLeftForChoice, RoutingEvent
from shenava.http.auth import sees_full_numbers, sees_transcripts
from shenava.http.jsonapi import resolve
from shenava_base.privacy import mask_number

log = Logger()

MAX_REMEMBERED_CALLS = 10_000
EARLIER_COMPLAINTS_SHOWN = 5
_SYSTEM = Actor("shenava-screen-pop", Role.SUPERVISOR)
"""Who looks up a caller's complaints on an agent's behalf. The lookup is by
the call's own number (never one the agent typed), so it reveals nothing; the
views are cut down and masked for the viewer before they leave."""


class CallMemory:
    """IVR outcomes of calls waiting for or talking to an agent, until the call ends."""

    def __init__(self, limit: int = MAX_REMEMBERED_CALLS) -> None:
        self._limit = limit
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()

    def attach(self, callflow: Any, dispatcher: Any, tracker: Any) -> None:
        callflow.subscribe(self.on_outcome)
        dispatcher.subscribe(self.on_routing_event)
        tracker.subscribe(self.on_tracker_event)

    def __len__(self) -> int:
        return len(self._outcomes)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._outcomes

    def get(self, call_id: str) -> Outcome | None:
        return self._outcomes.get(call_id)

    def on_outcome(self, outcome: Outcome) -> None:
        if outcome.requested is not Request.AGENT:
            return
        self._outcomes[outcome.call_id] = outcome
        self._outcomes.move_to_end(outcome.call_id)
        while len(self._outcomes) > self._limit:
            self._outcomes.popitem(last=False)

    def on_routing_event(self, event: RoutingEvent) -> None:
        if isinstance(event, (CallAbandoned, CallCompleted, CallLeftForChoice)):
            self._outcomes.pop(event.call_id, None)

    def on_tracker_event(self, event: TrackerEvent) -> None:
        if isinstance(event, ChannelHungUp):
            self._outcomes.pop(event.uniqueid, None)


def shown_number(number: str | None, actor: Actor) -> str | None:
    if not number:
        return None
    return number if sees_full_numbers(actor) else mask_number(number)


async def screen_pop(
    app: Any,
    memory: CallMemory,
    call_id: str,
    actor: Actor,
    now: float,
    *,
    waiting: WaitingCall | None = None,
) -> dict[str, Any]:
    """Everything the agent should know of ``call_id`` before speaking (JSON-ready)."""
    outcome = memory.get(call_id)
    number = (outcome.callback_number or outcome.caller_number) if outcome else None
    callback: dict[str, Any] | None = None
    flag_transcripts: tuple[str, ...] = ()
    if call_id.startswith(CALLBACK_CALL_PREFIX):
        number, callback, flag_transcripts = await callback_facts(app, call_id[len(CALLBACK_CALL_PREFIX):])
    view: dict[str, Any] = {
        "call_id": call_id,
        "kind": "callback" if callback is not None else "inbound",
        "callback": callback,
        "language": waiting.language if waiting else (outcome.language if outcome else None),
        "category": waiting.category if waiting else (outcome.category if outcome else None),
        "account": outcome.account if outcome else None,
        "reference": outcome.reference if outcome else None,
        "urgent": bool(outcome.urgent) if outcome else None,
        "urgency": str(waiting.urgency) if waiting else None,
        "vulnerable": (waiting.vulnerable if waiting else False)
        or (outcome.vulnerable if outcome else False),
        "care": outcome.care if outcome else None,
        "hard": waiting.hard if waiting else None,
        "abusive_caller": waiting.abusive_caller if waiting else None,
        "urgent_words": list(waiting.urgent_words) if waiting else [],
        "caller_number": shown_number(number, actor),
        "caller_id_number": shown_number(outcome.caller_number if outcome else None, actor),
        "number_masked": not sees_full_numbers(actor),
        "arrived_at": outcome.started_at if outcome else None,
        "joined_at": waiting.joined_at if waiting else None,
        "waited_s": round(now - waiting.joined_at, 1) if waiting else None,
        "ivr_path": list(outcome.path) if outcome else [],
        "known_to_ivr": outcome is not None,
        "transcript": None,
        "complaint": None,
        "earlier_complaints": [],
        "abuse_reports": [],
        "complaints": "not running",
    }
    transcripts: list[str] = list(flag_transcripts)
    recording_transcript = await _recording_transcript(app, call_id)
    if recording_transcript:
        transcripts.append(recording_transcript)
    register = complaint_register(app)
    if register is not None:
        try:
            found = await _complaint_facts(register, number, outcome, call_id, now)
        except Exception as exc:  # Redis down: the screen pop still shows the call
            log.warn(
                "screen pop of call {call}: complaints unavailable: {error}",
                call=call_id, error=str(exc) or type(exc).__name__,
            )
            view["complaints"] = "unavailable"
        else:
            view["complaints"] = "ok"
            current, earlier, reports, context = found
            view["complaint"] = _summary(current) if current else None
            view["earlier_complaints"] = [_summary(c) for c in earlier]
            view["abuse_reports"] = [_report_summary(r) for r in reports]
            view["open_complaint"] = context.get("open_complaint")
            view["repeat_complainant"] = context.get("repeat_complainant")
            for c in (current, *earlier):
                if c and c.get("transcript") and c["transcript"] != "(hidden)":
                    transcripts.append(str(c["transcript"]))
    if transcripts and sees_transcripts(actor):
        view["transcript"] = transcripts[0]
    return view


async def callback_facts(
    app: Any, flag_id: str
) -> tuple[str | None, dict[str, Any], tuple[str, ...]]:
    """The number a callback dials, what the desk shows of its flag, and its transcripts."""
    facts: dict[str, Any] = {"flag_id": flag_id, "attempt": None, "reasons": [], "opened_at": None}
    ext = app.complaints
    dialer = getattr(ext, "dialer", None)
    number = dialer.number_of(flag_id) if dialer is not None else None
    store = getattr(ext, "callbacks", None)
    if store is None:
        return number, facts, ()
    try:
        flag = await resolve(store.get(flag_id))
    except Exception as exc:  # Redis away: what the dialler remembers of the dial
        log.warn("screen pop of callback {flag}: the flag is unavailable: {error}",
                 flag=flag_id, error=str(exc) or type(exc).__name__)
        return number, facts, ()
    facts.update(
        attempt=flag.attempts[-1].number if flag.attempts else None,
        reasons=sorted({r.kind.value for r in flag.reasons}),
        opened_at=flag.opened_at,
    )
    return flag.number, facts, flag.transcripts


def complaint_register(app: Any) -> Any | None:
    """The complaint register of the daemon, if the complaints package runs in it."""
    ext = app.complaints
    if ext is None:
        return None
    register = getattr(ext, "register", ext)
    return register if hasattr(register, "caller_context") else None


async def _recording_transcript(app: Any, call_id: str) -> str | None:
    ext = app.recordings
    lookup = getattr(ext, "transcript_for_call", None)
    if lookup is None:
        return None
    try:
        text = await resolve(lookup(call_id))
    except Exception as exc:
        log.warn(
            "screen pop of call {call}: transcript unavailable: {error}",
            call=call_id, error=str(exc) or type(exc).__name__,
        )
        return None
    return str(text) if text else None


async def _complaint_facts(
    register: Any, number: str | None, outcome: Outcome | None, call_id: str, now: float
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[Any], dict[str, Any]]:
    from complaints.store import ComplaintQuery

    current: dict[str, Any] | None = None
    earlier: list[dict[str, Any]] = []
    reports: list[Any] = []
    context: dict[str, Any] = {}
    if number:
        ctx = await resolve(register.caller_context(number, now))
        context = {
            "open_complaint": bool(getattr(ctx, "open_complaint", False)),
            "repeat_complainant": bool(getattr(ctx, "repeat_complainant", False)),
        }
        found = await resolve(
            register.search(
                _SYSTEM, ComplaintQuery(number=number, limit=EARLIER_COMPLAINTS_SHOWN + 1)
            )
        )
        for c in found:
            if c.get("call_id") == call_id and current is None:
                current = c
            elif len(earlier) < EARLIER_COMPLAINTS_SHOWN:
                earlier.append(c)
        if hasattr(register, "reports_for_next_agent"):
            reports = list(await resolve(register.reports_for_next_agent(number, now)))
    reference = outcome.reference if outcome else None
    known = {c.get("reference") for c in (current, *earlier) if c}
    if reference and reference not in known:
        try:
            referenced = await resolve(register.get(_SYSTEM, reference))
        except Exception:  # a reference the caller typed may not exist: shown as given
            referenced = None
        if referenced is not None:
            earlier.insert(0, referenced)
    return current, earlier, reports, context


def _summary(c: Mapping[str, Any]) -> dict[str, Any]:
    """A complaint as the screen pop shows it: no number, no history (see /api/complaints)."""
    notes = c.get("notes") or []
    escalation = c.get("escalation")
    return {
        "reference": c.get("reference"),
        "category": c.get("category"),
        "status": c.get("status"),
        "opened_at": c.get("opened_at"),
        "updated_at": c.get("updated_at"),
        "account": c.get("account"),
        "repeat_of": c.get("repeat_of"),
        "notes": len(notes),
        "last_note": notes[-1].get("text") if notes else None,
        "escalated_to": escalation.get("to") if isinstance(escalation, Mapping) else None,
        "has_transcript": bool(c.get("transcript")),
    }


def _report_summary(r: Any) -> dict[str, Any]:
    data = r if isinstance(r, Mapping) else asdict(r)
    return {k: data.get(k) for k in ("report_id", "category", "reported_at", "status", "note")}
