"""Taking over the callers an earlier daemon left behind, on start and after every resync.

Asterisk keeps every caller where the stopped daemon left them: inside
``AGI(agi:async)`` (a menu, the hold loop) or in a bridge with an agent. It
sends ``AsyncAGIStart`` only once per call, to the sessions connected then
(transcript 45), so a new daemon finds its callers in the ``CoreShowChannels``
list by their place (the support context at the AGI step: ``Context``,
``Exten``, ``Priority``; never by ``Application``, which shows the last
``EXEC``ed app) and drives them with ``AGI`` actions, which queue behind the
command still running.

What each caller gets, from the call state in Redis (:mod:`shenava.call_state`):

- in the IVR: the menu they were in, with what they had entered, after a
  short "sorry, let's continue" prompt in their language;
- waiting: back on hold, their original join time kept (their place and the
  service-level clock);
- an agent's phone ringing for them: the leg is adopted and settled by its own
  events (answered: bridged; not: back in line);
- bridged to an agent: still answered, the agent still on the call, then
  wrap-up when it ends;
- no record (they arrived while no daemon ran): the main menu, their wait
  counted from their channel's creation.

A stored call whose caller is gone ended while nobody watched: it is counted
then, once (an abandon, or a completed conversation). Agents whose restored
state says ringing or on a call with no call left to hold them go to ready or
wrap-up. Callers this daemon already holds (a resync after an AMI reconnect)
are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from agent_stats.states import AgentState
from ami_bridge.codec import Message
from ami_bridge.errors import AMIError
from ami_bridge.events import ChannelHungUp
from ami_bridge.tracker import handles
from ivr.machine import Phase, state_from_dict
from ivr.outcome import Request
from shenava.call_state import CARRIED, AgiStep, CallStateRecorder, CallStateStore
from shenava.call_state_spool import CallStateSpool, lay_over
from shenava_base.aio import as_deferred
from shenava_base.outage import OutageNote

log = Logger()

APOLOGY_PROMPT = "resume-sorry"
"""Played (shenava/resume-sorry) to a caller whose menus resume under a new daemon
("sorry, let's continue", in their language)."""
DEFAULT_AGI_PRIORITY = 3
"""The AGI step of the shipped ``[shenava-complaints]`` (NoOp, Answer, AGI), until one is seen."""
STATE_UP = 6
UNSURE = "unsure"
"""A kept-voicemail look-up that Redis (away) could not answer."""
KEPT_RETRY_FIRST_S = 0.5
KEPT_RETRY_MAX_S = 5.0
"""The backoff of a kept-voicemail look-up retried while Redis is away."""
ROUND_RETRY_FIRST_S = 0.5
ROUND_RETRY_MAX_S = 5.0
"""The backoff of a take-over round that Redis (away) cut short."""
CALL_STATE_WRITE_S = 0.1
"""At most one call-state write per this long (``CallStateRecorder.min_interval_s``)."""


def decided_waiting(record: dict[str, Any]) -> dict[str, Any] | None:
    """A record whose IVR had decided "an agent" but that holds no place in line: as waiting.

    The join is the IVR's last step (after the complaint is opened and its
    reference read), and its call-state write can lag behind it: an
    overloaded daemon killed -9 seconds after the caller joined left only
    ``phase: done`` (agent) in Redis. (A write lagging past
    ``call_state.LAG_S`` now keeps the join on the host too, ``call-state.json``;
    this covers a kill inside that window, and a standby on another host.) Resumed at that step, a caller who hung
    up during the replay was counted as hung up in the IVR (no SL outcome, no
    abandon flag), and one who hung up while no daemon ran was not counted at
    all (``benchmarks/chaos.py``). Such a caller is taken as waiting since the
    IVR's decision (or the ``join_at`` the record carries): a hang-up is an
    abandon, counted once (the SL outcome by ``<queue>|<call id>``, the flag
    reason by its operation id, whichever daemon counts it). None for any
    other record."""
    raw = record.get("ivr")
    if record.get("phase") is not None or not isinstance(raw, dict):
        return None
    try:
        state = state_from_dict(raw)
    except (KeyError, TypeError, ValueError):
        return None
    outcome = state.outcome
    if state.phase is not Phase.DONE or outcome is None or outcome.requested is not Request.AGENT:
        return None
    join_at = record.get("join_at")
    return {
        **record,
        "phase": "waiting",
        "caller_number": outcome.callback_number or outcome.caller_number
        or str(record.get("caller_number") or ""),
        "arrived_at": float(record.get("arrived_at") or outcome.started_at),
        "joined_at": float(join_at) if join_at is not None else outcome.ended_at,
        "language": outcome.language,
        "category": outcome.category,
        "facts": {"urgency": "high" if outcome.urgent else "normal",
                  "vulnerable": outcome.vulnerable},
        "agent_id": None,
        "leg_id": None,
    }


def _voicemail_number(record: dict[str, Any], ivr: dict[str, Any]) -> str:
    """The number a voicemail's callback flag is raised for (as the IVR's outcome says)."""
    return str(ivr.get("callback_number") or record.get("caller_number") or ivr.get("caller_number") or "")


def _hms(value: str | None) -> float:
    total = 0.0
    for part in (value or "").split(":"):
        try:
            total = total * 60 + int(part)
        except ValueError:
            return 0.0
    return total


class Takeover:
    """Reads the stored call state and puts every caller back where they were."""

    def __init__(
        self,
        *,
        app: Any,
        store: CallStateStore,
        recorder: CallStateRecorder,
        ready: Callable[[], Deferred[Any]] | None = None,
        apology: str | None = APOLOGY_PROMPT,
        may_act: Callable[[], bool] | None = None,
    ) -> None:
        self._app = app
        self._store = store
        self._recorder = recorder
        self._ready = ready
        self._apology = apology
        self._may_act = may_act
        self._step: AgiStep | None = None
        self._first = True
        self._running: Deferred[None] | None = None
        self._pending_items: list[Message] | None = None
        self.rounds = 0
        self.resubmitted = 0
        """Journal records carried by stored call states and submitted again (all rounds)."""
        # The last round's (each round starts them afresh: kept across rounds, every
        # AMI reconnect added the calls then up, for the daemon's life).
        self.adopted: dict[str, str] = {}  # call id -> how (ivr, waiting, ringing, talking, new)
        self.ended_away: list[str] = []
        self.observers: list[Callable[[str, str], object]] = []
        # An agent's phone channel found up at the take-over -> the agent on it
        self._on_phone: dict[str, str] = {}
        # Callers left recording whose voicemail Redis could not yet say is kept
        # (call id -> record): held until it answers (:meth:`_decide_later`).
        self._undecided: dict[str, dict[str, Any]] = {}
        self._round_outage = OutageNote(
            "take-over", "the round is run again when Redis answers", log, app.reactor.seconds,
        )
        self._retry_items: list[Message] | None = None
        self._retry_call: Any = None
        self._retry_delay = ROUND_RETRY_FIRST_S
        self._kept_outage = OutageNote(
            "kept-voicemail look-ups", "callers left recording are held (no second recording)",
            log, app.reactor.seconds,
        )
        app.tracker.subscribe(self._on_tracker_event)

    # -- triggers ---------------------------------------------------------------

    def on_resync(self, items: list[Message]) -> None:
        """The AMI connection's resync observer: take over after every (re)connection."""
        if self._may_act is not None and not self._may_act():
            return
        self.run(items)

    def run(self, items: Iterable[Message]) -> Deferred[None]:
        items = list(items)
        if self._running is not None:
            self._pending_items = items  # run again with the newest list when this one ends
            return self._running
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        d = ensureDeferred(self._take_over(items))
        d.addCallbacks(self._round_done, self._round_failed, errbackArgs=(items,))
        self._running = d
        d.addBoth(self._done)
        return d

    def _round_done(self, _: object) -> None:
        self._retry_delay = ROUND_RETRY_FIRST_S
        self._round_outage.ok()

    def _round_failed(self, failure: Failure, items: list[Message]) -> None:
        """A round that Redis (away, slow, loading) cut short is run again, with
        backoff, until it answers: before, it was given up, and the callers it had
        not reached stayed in AGI with no daemon driving them until the next AMI
        reconnect (a Redis kill during a take-over: ``benchmarks/chaos.py``)."""
        if not self._round_outage.expected(failure.value):
            log.failure("take-over failed", failure)
            return
        self._round_outage.failed(failure.value)
        if self._pending_items is None:
            self._retry_items = items

    def _done(self, _: object) -> None:
        self._running = None
        items, self._pending_items = self._pending_items, None
        retry, self._retry_items = self._retry_items, None
        if items is not None:
            self.run(items)
        elif retry is not None:
            delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, ROUND_RETRY_MAX_S)
            self._retry_call = self._app.reactor.callLater(delay, self._retry_round, retry)

    def _retry_round(self, items: list[Message]) -> None:
        self._retry_call = None
        if self._may_act is not None and not self._may_act():
            return  # no longer the leader: the next one takes over
        self.run(items)

    def agi_step_seen(self, context: str, exten: str, priority: str) -> None:
        """``AsyncAGIStart`` of a support-line call: remember where the AGI step is."""
        try:
            step = AgiStep(context, exten, int(priority))
        except ValueError:
            return
        if step != self._step:
            self._step = step
            as_deferred(self._store.save_step(step)).addErrback(
                lambda f: log.warn("AGI step not stored: {e}", e=f.getErrorMessage())
            )

    # -- the work -----------------------------------------------------------------

    async def _take_over(self, items: list[Message]) -> None:
        if self._ready is not None:
            await self._ready()
        records = await as_deferred(self._store.load())
        spooled: list[str] = []
        spool = self._recorder.spool
        if self._first and spool is not None:
            # What an earlier run could not write before it died (Redis was away).
            records, spooled = lay_over(records, spool.load())
            if spooled:
                log.warn("call state of {n} calls taken from this host's file (Redis lacked it)",
                         n=len(spooled))
        if self._step is None:
            self._step = await as_deferred(self._store.load_step())
        if self._may_act is not None and not self._may_act():
            return
        self.rounds += 1
        self.adopted, self.ended_away = {}, []
        app = self._app
        dispatcher, callflow, tracker = app.dispatcher, app.callflow, app.tracker
        present = {m.get("Uniqueid") or "": m for m in items}
        self._resubmit_carried(records)
        kept = await self._kept_recordings(records, present)
        first, self._first = self._first, False
        now = app.reactor.seconds()
        taken: set[str] = set()
        for call_id, record in records.items():
            if dispatcher.holds(call_id) or callflow.holds(call_id) or self._recorder.own(call_id):
                # This process's own call (an AMI reconnect): its own code settles it.
                taken.add(call_id)
                continue
            if call_id in self._undecided:
                # Waiting for Redis to say whether its voicemail is kept (its hang-up settles it).
                taken.add(call_id)
                continue
            item = present.get(call_id)
            if item is None or tracker.channel(call_id) is None:
                # Not listed, or listed and gone since (the tracker has seen its
                # hang-up while Redis was read): it ended while nobody held it.
                if tracker.channel(call_id) is None:
                    self._ended_while_away(call_id, record, now)
                continue
            if call_id in kept and self._at_agi_step(item, app.config.site.support_context):
                taken.add(call_id)
                if kept[call_id] == UNSURE:
                    self._decide_later(call_id, record, item)
                else:
                    self._carry_on_recording(call_id, record, item, kept[call_id], now)
                continue
            how = self._adopt(call_id, record, item)
            if how:
                taken.add(call_id)
                self._note(call_id, how)
            else:
                self._recorder.mark(call_id)
        dispatcher.settle_adopted_legs()
        support = app.config.site.support_context
        for item in items:
            uniqueid = item.get("Uniqueid") or ""
            if not uniqueid or uniqueid in taken or uniqueid in records:
                continue
            if dispatcher.holds(uniqueid) or callflow.holds(uniqueid) or self._recorder.own(uniqueid):
                continue
            if not self._at_agi_step(item, support) or tracker.channel(uniqueid) is None:
                continue  # (None: hung up since the list, which a retried round reuses)
            caller = item.get("CallerIDNum") or ""
            if caller in ("<unknown>", "unknown"):
                caller = ""
            created = now - _hms(item.get("Duration"))
            started = callflow.start_session(
                uniqueid, item.get("Channel") or "", caller, created,
                channel_language=item.get("Language") or "en", join_at=created,
            )
            if started:
                self._note(uniqueid, "new")
        if first:
            self._settle_agents(now)
            if spool is not None:
                self._recorder.inherit_spool(spooled)
        log.info(
            "take-over round {n}: {adopted} callers taken over, {away} ended while no daemon watched",
            n=self.rounds, adopted=len(self.adopted), away=len(self.ended_away),
        )

    def _resubmit_carried(self, records: dict[str, dict[str, Any]]) -> None:
        """Submit again the journal records a stored state carries (its call's records
        that were not yet on the killed daemon's disk when it was written:
        ``shenava.journal.Journal.carried``), before anything reads or acts on it.
        Each is stored once by its id, so one that reached that disk after all (and
        is replayed from it) or Redis already is not counted twice. Not for this
        process's own calls: its journal has them."""
        journal = getattr(self._app, "journal", None)
        if journal is None:
            return
        count = 0
        for call_id, record in records.items():
            carried = record.get(CARRIED)
            if not carried or call_id in self._undecided or self._recorder.own(call_id):
                continue
            if self._app.dispatcher.holds(call_id) or self._app.callflow.holds(call_id):
                continue
            count += journal.resubmit(call_id, carried)
        if count:
            self.resubmitted += count
            log.info("take-over: {n} journal records carried by the call state submitted again "
                     "(not on the earlier daemon's disk when its state was written)", n=count)

    async def _kept_recordings(
        self, records: dict[str, dict[str, Any]], present: dict[str, Message]
    ) -> dict[str, str]:
        """Callers on the line whose record says they were recording a voicemail that
        is kept already: the killed daemon had the result and journalled it (before
        "message saved") but its call state's last write did not say so. Resumed at
        the recording they would leave it a second time (``benchmarks/chaos.py``).

        ``kept``: the intake has it. ``flagged``: only its callback flag reason is
        kept: the recording was over, so it is handed on again rather than
        recorded a second time (which left the flag two voicemail reasons:
        ``benchmarks/chaos.py``). The flag reason and the intake are one journal
        batch (one line, one fsync: ``recordings.wiring._chain``), so a daemon on
        the killed one's ``state.folder`` never finds one without the other; this
        second guard stays for what it cannot read: a standby on another host
        that finds the flag reason applied to Redis while the intake, applied
        after it, is still in the dead leader's journal (and a journal written
        before the batch, its entries one line each).

        ``unsure``: Redis (away, slow, loading) could not answer: the caller is
        held until it does (:meth:`_decide_later`)."""
        callflow = self._app.callflow
        kept: dict[str, str] = {}
        if callflow.recording_kept is None and callflow.voicemail_flagged is None:
            return kept
        for call_id, record in records.items():
            ivr, name = record.get("ivr"), record.get("recording")
            if call_id not in present or not name or not isinstance(ivr, dict):
                continue
            if ivr.get("phase") != "record" or self._recorder.own(call_id):
                continue
            if call_id in self._undecided:
                continue
            try:
                how = await self._kept(call_id, record)
            except Exception as exc:
                if not self._kept_outage.expected(exc):
                    log.failure("take-over: could not tell whether call {call}'s voicemail is kept",
                                call=call_id)
                    continue
                self._kept_outage.failed(exc)
                kept[call_id] = UNSURE
                continue
            self._kept_outage.ok()
            if how is not None:
                kept[call_id] = how
        return kept

    async def _kept(self, call_id: str, record: dict[str, Any]) -> str | None:
        """``kept``, ``flagged`` or None (see :meth:`_kept_recordings`); raises when
        neither the journal nor Redis can answer."""
        callflow = self._app.callflow
        name = str(record.get("recording"))
        ask, flagged = callflow.recording_kept, callflow.voicemail_flagged
        if ask is not None and await ask(call_id, name):
            return "kept"
        ivr = record.get("ivr")
        number = _voicemail_number(record, ivr if isinstance(ivr, dict) else {})
        if flagged is not None and await flagged(number, name):
            return "flagged"
        return None

    def _carry_on_recording(
        self, call_id: str, record: dict[str, Any], item: Message, how: str | None, now: float
    ) -> None:
        """A caller on the line left at the recording step, once it is known whether
        their voicemail is kept: "message saved" and the hang-up if it is (handed on
        again first if only its flag reason is), else the recording again."""
        callflow = self._app.callflow
        if how is not None:
            if how == "flagged":
                callflow.hand_on_recorded_voicemail(call_id, record, now)
            callflow.finish_kept_voicemail(call_id, record, item.get("Channel") or "")
            self._note(call_id, "ivr")
            return
        adopted = self._adopt(call_id, record, item)
        if adopted:
            self._note(call_id, adopted)
        else:
            self._recorder.mark(call_id)

    def _decide_later(self, call_id: str, record: dict[str, Any], item: Message) -> None:
        """Neither the journal nor Redis (away) can say whether this caller's voicemail
        is kept. Resumed at the recording, they would leave a second voicemail if the
        first is kept (Redis has it, applied from the journal already); told "message
        saved", they would lose it if it is not. So the caller is held where they are
        (the old daemon's command finishes; nothing new is sent) and asked about again,
        with backoff, until Redis answers; a hang-up meanwhile hands the recording on
        (:meth:`_ended_while_away`: idempotent, by the recording's id)."""
        log.warn("take-over: call {call} was recording a voicemail and Redis cannot say whether "
                 "it is kept: the caller is held until it answers (no second recording)",
                 call=call_id)
        self._undecided[call_id] = record
        d = ensureDeferred(self._decide_when_redis_answers(call_id, record, item))
        d.addErrback(lambda f: log.failure("take-over of call {call} failed", f, call=call_id))

    async def _decide_when_redis_answers(
        self, call_id: str, record: dict[str, Any], item: Message
    ) -> None:
        delay = KEPT_RETRY_FIRST_S
        how: str | None = None
        channel = item.get("Channel") or str(record.get("channel") or "")
        while True:
            await self._hold_music(channel, delay)
            delay = min(delay * 2, KEPT_RETRY_MAX_S)
            if call_id not in self._undecided:
                return  # hung up meanwhile: settled then
            if self._may_act is not None and not self._may_act():
                # No longer the leader: the next one's take-over decides.
                del self._undecided[call_id]
                return
            try:
                how = await self._kept(call_id, record)
            except Exception as exc:
                if not self._kept_outage.expected(exc):
                    del self._undecided[call_id]
                    raise
                self._kept_outage.failed(exc)
                continue
            self._kept_outage.ok()
            break
        if self._undecided.pop(call_id, None) is None:
            return  # hung up while Redis answered: settled then
        now = self._app.reactor.seconds()
        if self._app.tracker.channel(call_id) is None:
            self._ended_while_away(call_id, record, now)
            return
        log.info("take-over: call {call}'s voicemail is {how}", call=call_id,
                 how="not kept: recorded again" if how is None else how)
        self._carry_on_recording(call_id, record, item, how, now)

    async def _hold_music(self, channel: str, seconds: float) -> None:
        """A held caller hears the hold music (``[routing.hold] music_class``) for about
        ``seconds`` between two questions to Redis, as callers waiting in line do.

        Before, nothing was sent: once the old daemon's command ended they heard
        silence for as long as Redis was away. The music is queued behind that
        command (AsyncAGI runs one at a time), and the next question waits for it
        to end, so nothing piles up for when Redis answers. If the channel is
        gone or the link fails, plain waiting (the hang-up is settled elsewhere)."""
        reactor = self._app.reactor
        hold = getattr(getattr(getattr(self._app.config, "routing", None), "dispatch", None), "hold", None)
        music_class = getattr(hold, "music_class", "default")
        started = reactor.seconds()
        if channel:
            try:
                result = await self._app.connection.agi(
                    channel, f"EXEC MusicOnHold {music_class},{max(1, math.ceil(seconds))}")
                if not getattr(result, "hung_up", False):
                    return
            except AMIError as exc:  # the channel went, the link failed, the command timed out
                log.debug("take-over: hold music for {channel} not played: {error}", channel=channel,
                          error=str(exc))
        left = seconds - (reactor.seconds() - started)
        if left > 0:
            await deferLater(reactor, left, lambda: None)

    def _ended_while_away(self, call_id: str, record: dict[str, Any], now: float) -> None:
        """A stored call whose caller is gone: counted, and what it left handed on, once."""
        app = self._app
        app.dispatcher.ended_while_away(decided_waiting(record) or record)
        app.callflow.recover_voicemail(call_id, record, now)
        app.callflow.recover_hold_choice(call_id, record)
        self.ended_away.append(call_id)
        self._recorder.mark(call_id)  # nobody holds it: the record goes

    def _adopt(self, call_id: str, record: dict[str, Any], item: Message) -> str | None:
        app = self._app
        channel = item.get("Channel") or str(record.get("channel") or "")
        phase = record.get("phase")
        if phase == "talking":
            leg = record.get("leg_id")
            if leg and app.tracker.channel(str(leg)) is None:
                # The agent's side is gone: the conversation ended while we were away.
                app.dispatcher.ended_while_away(record)
                self.ended_away.append(call_id)
                app.connection.send_action("Hangup", [("Channel", channel)]).addErrback(lambda _: None)
                return None
            app.dispatcher.adopt_talking(record, channel)
            return "talking"
        if not self._at_agi_step(item, app.config.site.support_context):
            return None
        if phase is None and (decided := decided_waiting(record)) is not None:
            app.dispatcher.adopt_waiting(decided, channel)  # the join's write had not landed
            return "waiting"
        if phase == "waiting":
            app.dispatcher.adopt_waiting(record, channel)
            return "waiting"
        if phase == "ringing" and record.get("leg_id") and record.get("agent_id"):
            app.dispatcher.adopt_ringing(record, channel)
            return "ringing"
        if isinstance(record.get("hold_choice"), dict):
            # pressed 1 or 2 while waiting: the choice carries on (docs/takeover.md)
            return "hold_choice" if app.callflow.resume_hold_choice(call_id, record, channel) else None
        ivr = record.get("ivr")
        if isinstance(ivr, dict):
            try:
                state = state_from_dict(ivr)
            except (KeyError, TypeError, ValueError):
                log.error("IVR state of call {call} unreadable: main menu", call=call_id)
                state = None
            arrived = float(record.get("arrived_at") or app.reactor.seconds())
            join_at = record.get("join_at")
            app.callflow.start_session(
                call_id, channel, str(record.get("caller_number") or ""), arrived,
                resume=state, complaint=record.get("complaint"),
                apology=self._apology if state is not None else None,
                join_at=float(join_at) if join_at is not None else None,
            )
            return "ivr"
        return None

    def _at_agi_step(self, item: Message, support: str) -> bool:
        """At the AGI step of the support line (where ``AGI`` actions reach the caller)."""
        if item.get("Context") != support:
            return False
        step = self._step
        try:
            priority = int(item.get("Priority") or 0)
        except ValueError:
            return False
        if step is not None and step.context == support:
            return priority == step.priority and (item.get("Exten") or "") == step.exten
        return priority == DEFAULT_AGI_PRIORITY

    def _settle_agents(self, now: float) -> None:
        """Agents the restored ledgers left ringing or on a call that no call holds now.

        One whose phone still has a channel up (a callback conversation, which
        the call state does not hold, or a call whose last write was lost) stays
        on that call until the channel hangs up, then goes to wrap-up."""
        app = self._app
        for status in list(app.roster):
            agent_id = status.profile.agent_id
            if app.dispatcher.call_of_agent(agent_id) is not None:
                continue
            if status.state is AgentState.ON_CALL:
                phone = self._phone_channel(status.profile.endpoint)
                if phone is not None:
                    self._on_phone[phone] = agent_id
                    app.roster.resume_call(agent_id, f"unknown:{phone}", now)
                    continue
                app.dispatcher.end_in_wrap_up(agent_id, now)
            elif status.state is AgentState.RINGING:
                app.roster.ring_cancelled(agent_id, now)

    def _phone_channel(self, endpoint: str) -> str | None:
        """The Uniqueid of a live, answered channel of the agent's endpoint, if any."""
        prefix = endpoint.lower() + "-"
        for uniqueid, channel in self._app.tracker.channels.items():
            if channel.name.lower().startswith(prefix) and channel.state == STATE_UP:
                return str(uniqueid)
        return None

    @handles(ChannelHungUp)
    def _on_tracker_event(self, event: Any) -> None:
        if isinstance(event, ChannelHungUp) and event.uniqueid in self._undecided:
            record = self._undecided.pop(event.uniqueid)
            self._ended_while_away(event.uniqueid, record, event.at)
        if isinstance(event, ChannelHungUp) and event.uniqueid in self._on_phone:
            agent_id = self._on_phone.pop(event.uniqueid)
            app = self._app
            if app.roster.get(agent_id).state is AgentState.ON_CALL:
                app.dispatcher.end_in_wrap_up(agent_id, event.at)

    def _note(self, call_id: str, how: str) -> None:
        self.adopted[call_id] = how
        log.info("took over call {call} ({how})", call=call_id, how=how)
        for observer in list(self.observers):
            observer(call_id, how)


__all__ = ["APOLOGY_PROMPT", "Takeover", "decided_waiting"]


class CallStateExtension:
    """The call state's place in the daemon: recorder, take-over, their hooks."""

    def __init__(self, store: CallStateStore, recorder: CallStateRecorder, takeover: Takeover) -> None:
        self.store = store
        self.recorder = recorder
        self.takeover = takeover

    def stop(self) -> Deferred[None]:
        """Write what is marked, then stop (the records stay for the next daemon)."""
        d = self.recorder.flushed()
        d.addBoth(lambda _: self.recorder.stop())
        return d


def _thread_runner(reactor: Any) -> Callable[[Callable[[], Any]], Deferred[Any]] | None:
    """The reactor's thread pool (the host's call-state file is written there), if it has one."""
    if not hasattr(reactor, "getThreadPool"):
        return None  # a virtual clock (the end-to-end tests): written inline
    from twisted.internet.threads import deferToThreadPool

    def run(f: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f)

    return run


def install(app: Any) -> CallStateExtension:
    """Keep the call state in Redis and take callers over on every resync (``app.redis`` set)."""
    store = CallStateStore(app.redis, app.config.redis.key_prefix, app.config.site.id)
    recorder = CallStateRecorder(
        store, app.reactor, [app.dispatcher.snapshot, app.callflow.snapshot],
        fence=getattr(app, "fence", None), min_interval_s=CALL_STATE_WRITE_S,
        records_kept=app.journal.written if app.journal is not None and app.config.state.durable else None,
        carried=app.journal.carried if app.journal is not None and app.config.state.durable else None,
        run_in_thread=_thread_runner(app.reactor),
    )
    if app.config.state.durable:
        recorder.spool = CallStateSpool(Path(app.config.state.folder))
    app.dispatcher.on_change = recorder.mark
    app.callflow.on_change = recorder.mark
    stats = app.agent_stats
    ready: Callable[[], Deferred[Any]] | None = None
    if stats is not None:
        # A restored agent stays ringing or on a call until the take-over has
        # seen whether that call survived (see agent_stats.restore.Restorer.merge).
        stats.keep_states = frozenset({AgentState.ON_CALL, AgentState.RINGING})
        started = stats.started

        def ready() -> Deferred[Any]:
            done: Deferred[Any] = Deferred()

            def relay(result: object) -> object:
                if not done.called:
                    done.callback(None)
                return result

            started.addBoth(relay)
            return done

    takeover = Takeover(app=app, store=store, recorder=recorder, ready=ready)
    app.callflow.on_agi_step = takeover.agi_step_seen
    app.connection.add_resync_observer(takeover.on_resync)
    return CallStateExtension(store, recorder, takeover)
