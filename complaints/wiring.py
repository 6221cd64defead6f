"""How the complaints package joins the daemon's object graph (see shenava.app).

``install(app)`` builds the register, the callback flags and their dialer, and
fills the call flow's hooks:

- ``lookup_complaint(ref)``: the IVR's status option reads the register;
- ``open_complaint(outcome, channel)``: a new complaint from the IVR, whose
  reference the call flow reads back to the caller;
- ``caller_facts(number)``: an open complaint, a repeat complainant (routing's
  ``recent_call``), a pending callback flag, an abuse report (``abusive_caller``:
  the call goes to an experienced agent), and what packages installed later
  read (``add_facts_reader``: the recordings' urgent words), in one pipeline
  (on a cluster redis-py sends it per node) and one ``MGET`` of the caller's
  complaints and reports: two round trips and 4-5 commands where there were
  five round trips in a row and 5-6 commands;
- ``on_callback`` / ``on_voicemail`` / ``on_hold_choice``: callback flags
  (chained: a handler installed before ours is called first, and whoever
  installs after us must call ours the same way).

It subscribes to routing's events (abandons raise flags; every event that may
free an agent or empty the line pokes the dialer), wires abuse reports to the
roster (recovery at once, or when the agent's call ends) and starts the
periodic jobs (stale-complaint sweep, retention purge) on the app's clock.

The returned :class:`ComplaintsExtension` is ``app.complaints``:
the HTTP API, the recordings wiring (transcripts: ``register.attach_transcript``,
``callbacks.attach_transcript``) and the demo use it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from complaints.callback_sources import AnswerRate, CallbackSources
from complaints.complaint import Channel, Complaint, ComplaintStatus
from complaints.jobs import RegisterJobs
from complaints.recovery import RecoveryKeeper
from complaints.reference_blocks import ReferenceBlocks, ReferencesNotReadyError
from complaints.service import ComplaintRegister, RegisterPolicy
from complaints.store import ComplaintStore
from ivr.machine import Outcome
from ivr.menu_schema import Request
from routing.callback_dialer import CallbackDialConfig, CallbackDialer, ServiceLevel
from routing.callback_store import CallbackStore
from routing.callbacks import CallingHours, DialPolicy
from routing.events import CallAbandoned, CallCompleted, CallLeftForChoice, RoutingEvent
from shenava_base.aio import as_deferred
from shenava_base.journal import RecordJournal, call_key, number_key

log = Logger()

DEFAULT_CALLING_HOURS = {"daily": ["09:00-20:00"]}
"""Used only while the config has no ``[callbacks.calling_hours]``: daytime, site time zone."""

IVR_STATUS_KEYS = {
    ComplaintStatus.OPEN: "received",
    ComplaintStatus.IN_PROGRESS: "in_progress",
    ComplaintStatus.WAITING_FOR_CUSTOMER: "awaiting_customer",
    ComplaintStatus.RESOLVED: "resolved",
    ComplaintStatus.CLOSED: "closed",
}
"""Register statuses -> the status prompts of ``ivr/menus.toml``."""


@dataclass(frozen=True, slots=True)
class ComplaintsSettings:
    """What this package reads from the config (defaults until the sections exist)."""

    dial_policy: DialPolicy
    hours: CallingHours
    register_policy: RegisterPolicy
    callback_retention_s: float

    @classmethod
    def from_config(cls, config: Any) -> ComplaintsSettings:
        callbacks = getattr(config, "callbacks", None)
        policy = getattr(callbacks, "policy", None) or DialPolicy()
        hours = getattr(callbacks, "hours", None)
        if hours is None:
            site = getattr(config, "site", None)
            tz = getattr(site, "timezone", "UTC")
            hours = CallingHours.from_mapping({"timezone": tz, "windows": DEFAULT_CALLING_HOURS})
        register_policy = getattr(config, "complaints", None) or RegisterPolicy()
        retention = getattr(callbacks, "retention_s", None) or register_policy.retention_s
        return cls(policy, hours, register_policy, retention)


class FactsReader(Protocol):
    """Another package's part of the caller's facts, read in the same pipeline."""

    def queue(self, pipe: Any, number: str) -> int:
        """Queue the reads on ``pipe``; how many commands."""
        ...

    async def facts(self, number: str, replies: Sequence[Any]) -> dict[str, Any]:
        """``WaitingCall`` facts from those commands' replies."""
        ...


@dataclass(slots=True, eq=False)
class ComplaintsExtension:
    register: ComplaintRegister
    callbacks: CallbackStore
    dialer: CallbackDialer
    sources: CallbackSources
    recovery: RecoveryKeeper
    jobs: RegisterJobs
    settings: ComplaintsSettings
    references: ReferenceBlocks | None = None
    clock: Any = None
    _prepare_call: Any = None
    fact_readers: list[FactsReader] = field(default_factory=list)

    def add_facts_reader(self, reader: FactsReader) -> None:
        """Read ``reader``'s facts with ours, in one pipeline per caller (``caller_facts``)."""
        self.fact_readers.append(reader)

    def start(self) -> None:
        self.dialer.start()
        self.jobs.start()
        if self.references is not None:
            self._prepare_references(1.0)

    def stop(self) -> None:
        self.dialer.stop()
        self.jobs.stop()
        call, self._prepare_call = self._prepare_call, None
        if call is not None and call.active():
            call.cancel()

    def _prepare_references(self, delay: float) -> None:
        """Reserve reference blocks; while Redis is away, try again (backing off to a minute)."""
        refs = self.references
        assert refs is not None
        clock = self.clock

        def failed(failure: Any) -> None:
            log.warn(
                "references: blocks not reserved yet ({error}); {left} in hand; retry in {delay:.0f} s",
                error=failure.getErrorMessage(), left=refs.in_hand, delay=delay,
            )
            self._prepare_call = clock.callLater(delay, self._prepare_references, min(60.0, delay * 2))

        as_deferred(refs.prepare()).addErrback(failed)

    async def complaint_for_recording(self, number: str, recording_id: str) -> Complaint | None:
        """The complaint a voicemail belongs to (for the transcription's ``attach_transcript``)."""
        for c in reversed(await self.register.store.for_number(number)):
            if recording_id in c.recordings:
                return c
        return None


def install(app: Any) -> ComplaintsExtension:
    """Add this package's storage and subscriptions to app; returns its handle (started)."""
    settings = ComplaintsSettings.from_config(app.config)
    prefix = app.config.redis.key_prefix
    clock = app.reactor
    recovery = RecoveryKeeper(app.roster, clock)
    journal = app.journal
    references = _references(app)
    register = ComplaintRegister(
        ComplaintStore(app.redis, prefix, references), settings.register_policy, on_recovery=recovery,
        tz=settings.hours.tz,
    )
    if journal is not None:
        journal.register(OPEN_KIND, lambda entry: _open_from_journal(register, entry))
        register.use_journal(journal)
    callbacks = CallbackStore(app.redis, prefix, settings.dial_policy, site=app.config.site.id)
    dialer = CallbackDialer(
        store=callbacks,
        ami=app.connection,
        tracker=app.tracker,
        roster=app.roster,
        waiting_calls=lambda: app.dispatcher.waiting,
        clock=clock,
        hours=settings.hours,
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        service_level=_service_level(app),
        staffed_service_level=_service_level(app, "staffed_service_level"),
        config=CallbackDialConfig(
            context=app.config.site.callback_context,
            wrap_up_s=getattr(getattr(app.dispatcher, "_config", None), "wrap_up_s", 10.0)
        ),
        journal=journal,
        cross_site=lambda: _several_sites(app),
    )
    sources = CallbackSources(
        callbacks, clock, waiting_calls=lambda: app.dispatcher.waiting, rate=AnswerRate(),
        on_raised=dialer.flag_raised, journal=journal,
    )
    jobs = RegisterJobs(
        register, callbacks, clock, callback_retention_s=settings.callback_retention_s,
        on_flag_raised=dialer.poke,
    )
    ext = ComplaintsExtension(
        register, callbacks, dialer, sources, recovery, jobs, settings, references, clock
    )
    _fill_callflow(app, ext)
    app.dispatcher.subscribe(lambda event: _on_routing_event(ext, event))
    ext.start()
    return ext


def _several_sites(app: Any) -> bool:
    """Whether other sites share this Redis (the centre's register of sites, read every
    few seconds; before its first read, whether this one is a named site): only then
    are customers' calls in marked for the other sites' diallers."""
    registered = getattr(getattr(app, "centre", None), "registered", None)
    if registered is None:
        return bool(app.config.site.id)
    return len(registered) > 1


def _service_level(app: Any, name: str = "headroom_service_level") -> ServiceLevel | None:
    """SLA headroom for a callback: agent_stats' predicted SL with one agent fewer.

    The same test as for breaks (docs/statistics.md): dialling takes one agent
    away, so it waits while the prediction without that agent is below
    ``callbacks.min_service_level``. Without agent_stats, no SL check."""
    stats = app.agent_stats
    level = getattr(stats, name, None)
    return level if callable(level) else None


def _on_routing_event(ext: ComplaintsExtension, event: RoutingEvent) -> None:
    ext.sources.on_routing_event(event)
    if isinstance(event, (CallAbandoned, CallCompleted, CallLeftForChoice)):
        ext.dialer.nudge()  # the line got shorter or an agent is about to be free


# -- the call flow's hooks -------------------------------------------------------------


def _fill_callflow(app: Any, ext: ComplaintsExtension) -> None:
    flow = app.callflow
    clock = app.reactor
    register = ext.register

    async def lookup(reference: str) -> str | None:
        status = await register.ivr_status(reference)
        return IVR_STATUS_KEYS[status.status] if status.found and status.status else None

    async def open_for(outcome: Outcome) -> str | None:
        complaint = await register.open_complaint(
            clock.seconds(), **complaint_fields(outcome)
        )
        return complaint.reference

    journal: RecordJournal | None = app.journal

    def open_kept(outcome: Outcome, journal: RecordJournal) -> Deferred[str | None]:
        """The reference is made here, the complaint kept in the journal until Redis has it."""
        try:
            reference = register.store.new_reference_now()
        except ReferencesNotReadyError:
            return as_deferred(open_for(outcome))  # no block in hand: Redis must answer
        fields = complaint_fields(outcome)
        entry = {"reference": reference, "now": clock.seconds(), "fields": fields_to_json(fields)}
        keys = (call_key(outcome.call_id), number_key(fields["number"]))
        d = journal.submit(OPEN_KIND, entry, keys)
        d.addCallback(lambda _: reference)
        return d

    async def facts(number: str) -> dict[str, Any]:
        """One pipeline (ours, the callback flag's and every reader's), then one ``MGET``.

        A Redis error fails the facts as a whole (the call flow logs it and the
        caller joins with the IVR's own facts), where a package's own read
        failed alone before: they are one server's (or cluster's) replies."""
        readers = list(ext.fact_readers)
        pipe = app.redis.pipeline(transaction=False)
        ours = register.store.queue_caller_reads(pipe, number)
        flag = ext.callbacks.queue_has_open_flag(pipe, number)
        counts = [reader.queue(pipe, number) for reader in readers]
        replies = await pipe.execute()
        complaints, reports = await register.store.caller_records(replies[:ours])
        context = register.context_of(complaints, reports, clock.seconds())
        out: dict[str, Any] = {
            "open_complaint": context.open_complaint,
            "recent_call": context.repeat_complainant,
            "callback_flag": bool(replies[ours]) if flag else False,
            "abusive_caller": context.abusive_caller,
        }
        at = ours + flag
        for reader, n in zip(readers, counts, strict=True):
            try:
                part = await reader.facts(number, replies[at : at + n])
            except Exception:
                log.failure("caller facts of {reader} unreadable", reader=type(reader).__name__)
                part = {}
            at += n
            if "urgent_words" in part and "urgent_words" in out:
                part["urgent_words"] = tuple(dict.fromkeys((*out["urgent_words"], *part["urgent_words"])))
            out.update(part)
        return out

    def open_complaint(outcome: Outcome, channel: str) -> Deferred[str | None]:
        if _taken_over(app, outcome.call_id):
            d = as_deferred(_open_once(outcome))
        else:
            d = open_kept(outcome, journal) if journal is not None else as_deferred(open_for(outcome))
        d.addErrback(_complaint_not_opened, outcome.call_id)
        return d

    async def _open_once(outcome: Outcome) -> str | None:
        """A caller taken over after a crash may have had their complaint opened
        already (the call state Redis got predates it): find it by call id first."""
        number = complaint_fields(outcome)["number"]
        if journal is not None:
            # Opened by the killed daemon and still in the journal (Redis away,
            # or not yet replayed): Redis cannot show it yet.
            for payload in journal.pending(OPEN_KIND, call_key(outcome.call_id)):
                if payload.get("reference"):
                    log.info("call {call}: its complaint was opened before the take-over (in the journal)",
                             call=outcome.call_id)
                    return str(payload["reference"])
        if number and (journal is None or journal.redis_away_since is None):
            try:
                for c in await register.store.for_number(number):
                    if c.call_id == outcome.call_id:
                        log.info("call {call}: its complaint was opened before the take-over",
                                 call=outcome.call_id)
                        return str(c.reference)
            except Exception as exc:
                log.warn("complaint of call {call} not looked up ({error}); opening one",
                         call=outcome.call_id, error=exc)
        if journal is not None:
            import asyncio

            return await open_kept(outcome, journal).asFuture(asyncio.get_running_loop())
        return await open_for(outcome)

    flow.lookup_complaint = lambda ref: as_deferred(lookup(ref))
    flow.open_complaint = open_complaint
    flow.caller_facts = lambda number: as_deferred(facts(number))
    flow.on_callback = _chain2(flow.on_callback, ext.sources.on_ivr_callback)
    flow.on_voicemail = _chain2(flow.on_voicemail, ext.sources.on_ivr_voicemail)
    flow.voicemail_flagged = lambda number, name: as_deferred(
        ext.sources.voicemail_flagged(number, name)
    )
    flow.on_hold_choice = _chain2(flow.on_hold_choice, ext.sources.on_hold_choice)


def _taken_over(app: Any, call_id: str) -> bool:
    extension = app.takeover
    takeover = getattr(extension, "takeover", None)
    return takeover is not None and call_id in getattr(takeover, "adopted", {})


def _complaint_not_opened(failure: Any, call_id: str) -> None:
    log.failure("complaint of call {call} not opened", failure, call=call_id)
    return None


def _chain2(previous: Any, ours: Any) -> Any:
    """A hook that calls the one installed before (if any), then ours; both always run."""
    if previous is None:
        return ours

    def both(first: Any, second: Any) -> Deferred[Any]:
        d = maybeDeferred(previous, first, second)
        d.addErrback(lambda f: log.failure("earlier hook failed", f))
        d.addCallback(lambda _: ours(first, second))
        return d

    return both


OPEN_KIND = "complaint.open"


def _references(app: Any) -> ReferenceBlocks | None:
    """The daemon's reference blocks (only with a journal: the daemon, not unit tests)."""
    if app.journal is None:
        return None
    state = app.config.state
    refs = ReferenceBlocks(
        app.redis, app.config.redis.key_prefix,
        folder=Path(state.folder) if state.folder else None,
        secret=state.reference_secret, block=state.reference_block,
    )
    refs.load()
    return refs


def fields_to_json(fields: dict[str, Any]) -> dict[str, Any]:
    """``complaint_fields`` as the journal keeps them."""
    out = dict(fields)
    out["channel"] = str(fields["channel"])
    out["recordings"] = list(fields.get("recordings", ()))
    return out


def fields_from_json(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    out["channel"] = Channel(data["channel"])
    out["recordings"] = tuple(data.get("recordings", ()))
    return out


async def _open_from_journal(register: ComplaintRegister, entry: dict[str, Any]) -> Complaint:
    """Apply a journal entry: idempotent by its reference (a replay finds it stored)."""
    return await register.open_complaint(
        entry["now"], reference=entry["reference"], **fields_from_json(entry["fields"])
    )


def complaint_fields(outcome: Outcome) -> dict[str, Any]:
    """The register's ``open_complaint`` arguments for an IVR outcome."""
    channel = {
        Request.VOICEMAIL: Channel.VOICEMAIL,
        Request.CALLBACK: Channel.CALLBACK,
    }.get(outcome.requested, Channel.IVR)
    ivr = {"requested": str(outcome.requested), "path": "/".join(outcome.path)}
    if outcome.urgent is not None:
        ivr["urgent"] = "yes" if outcome.urgent else "no"
    if outcome.vulnerable:
        ivr["vulnerable"] = "yes"
    if outcome.care:
        ivr["care"] = outcome.care
    if outcome.reference:
        ivr["reference_given"] = outcome.reference
    if outcome.callback_number:
        ivr["callback_number"] = outcome.callback_number
    return {
        "category": outcome.category or "general",
        "channel": channel,
        "number": outcome.caller_number or outcome.callback_number or None,
        "by": "ivr",
        "language": outcome.language,
        "account": outcome.account,
        "call_id": outcome.call_id,
        "ivr": ivr,
        "recordings": (outcome.recording,) if outcome.recording else (),
    }


__all__ = ["ComplaintsExtension", "ComplaintsSettings", "complaint_fields", "install"]
