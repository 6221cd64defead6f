"""The daemon's voicemail service: names recordings, registers them, attaches transcripts.

Runs on the reactor thread; every Redis call goes through redis.asyncio and
nothing here touches audio or Vosk. Three jobs:

- **Names.** :meth:`VoicemailService.recording_name` is the allocator the IVR
  runner and the hold-choice recorder call before ``RECORD FILE``: a fresh id
  from the time and a random token, under ``recordings.asterisk_dir``. Nothing
  from the channel or the caller's keys reaches a path.
- **Intake.** :meth:`voicemail_from_ivr` (the IVR's voicemail outcome) and
  :meth:`voicemail_from_hold` (a waiting caller who pressed 2) register the
  voicemail with its metadata (caller, time, language, IVR data, complaint
  reference), which queues its transcription job, and raise the caller's
  callback flag with a ``voicemail`` reason whose source is the voicemail id.
- **Transcripts.** :meth:`handle_transcribed` attaches a finished transcript to
  the complaint (``ComplaintRegister.attach_transcript``) and to the callback
  flag (``CallbackStore.attach_transcript``), and remembers an urgent one for
  the caller's number so routing can raise their priority.

With a journal (:mod:`shenava.journal`, the daemon's) the intake of each
voicemail is kept on this host until Redis has all of it (record, job,
complaint, flag): every step is idempotent (the record by its id, the
complaint found again by its call id, the flag by its voicemail reason), so a
replay after a crash stores nothing twice, and a step that failed because Redis
was away (``RedisError``) makes the whole entry retry.

The complaint register and the callback store are optional collaborators:
without them (no Redis for complaints, a unit test) voicemails are still
stored and transcribed.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, Protocol

from redis.exceptions import RedisError
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from recordings.store import TranscribedEvent, VoicemailMeta, VoicemailStore, ivr_fields
from shenava_base.privacy import mask_number

__all__ = ["CallbackPort", "ComplaintPort", "VoicemailService", "caller_key"]

URGENT_MEMORY_S = 7 * 86400.0
"""How long a caller's urgent voicemail keeps raising the priority of their calls."""
JOURNAL_KIND = "voicemail.intake"
MAX_REMEMBERED_OUTCOMES = 1000
"""IVR outcomes kept to enrich a later hold-choice voicemail of the same call."""
VOICEMAIL_CATEGORY = "general"
"""The category of a complaint opened for a voicemail left without one (main menu, option 4);
the same as ``complaints.wiring.complaint_fields`` gives an outcome without a category."""

log = Logger()


class ComplaintPort(Protocol):
    """What the service uses of :class:`complaints.service.ComplaintRegister`."""

    async def open_complaint(
        self, now: float, *, category: str, channel: Any, number: str | None = None, **fields: Any
    ) -> Any: ...

    async def attach_transcript(
        self, reference: str, transcript: str, now: float, *, recording_id: str | None = None
    ) -> Any: ...


class CallbackPort(Protocol):
    """What the service uses of :class:`routing.callback_store.CallbackStore`."""

    async def raise_reason(self, number: str, reason: Any, now: float, *, op_id: str | None = None) -> Any: ...

    async def attach_transcript(self, number: str, recording_id: str, transcript: str, now: float) -> Any: ...

    async def open_flag_for(self, number: str) -> Any: ...


def caller_key(number: str | None) -> str:
    """A caller number as the urgency memory keys it: digits, and a leading ``+`` kept."""
    text = (number or "").strip()
    digits = re.sub(r"\D", "", text)
    return ("+" + digits if text.startswith("+") else digits) if len(digits) >= 3 else ""


class VoicemailService:
    def __init__(
        self,
        store: VoicemailStore,
        now: Callable[[], float],
        *,
        complaints: ComplaintPort | None = None,
        callbacks: CallbackPort | None = None,
        urgent_memory_s: float = URGENT_MEMORY_S,
        journal: Any | None = None,
    ) -> None:
        self.journal = journal
        if journal is not None:
            journal.register(JOURNAL_KIND, self._apply_entry)
        self.store = store
        self._now = now
        self.complaints = complaints
        self.callbacks = callbacks
        self.urgent_memory_s = urgent_memory_s
        self._outcomes: OrderedDict[str, Any] = OrderedDict()
        self.registered = 0
        self.attached = 0

    def now(self) -> float:
        return self._now()

    # -- names -------------------------------------------------------------------

    def recording_name(self) -> str:
        """A fresh ``RECORD FILE`` name (the IVR runner's and the hold recorder's allocator)."""
        return self.store.allocate(self._now()).record_name

    # -- intake ------------------------------------------------------------------

    def remember_outcome(self, outcome: Any) -> None:
        """Keep an IVR outcome (a call-flow observer): a later hold voicemail carries its data."""
        self._outcomes[outcome.call_id] = outcome
        self._outcomes.move_to_end(outcome.call_id)
        while len(self._outcomes) > MAX_REMEMBERED_OUTCOMES:
            self._outcomes.popitem(last=False)

    async def voicemail_from_ivr(self, outcome: Any, channel: str = "") -> str | None:
        """The IVR's voicemail outcome: register it; its id, or None if there is nothing to keep."""
        return await _awaited(self.intake_from_ivr(outcome, channel))

    async def voicemail_from_hold(self, event: Any, recording_name: str | None) -> str | None:
        """A waiting caller chose to leave a voicemail (``CallLeftForChoice``)."""
        return await _awaited(self.intake_from_hold(event, recording_name))

    def intake_from_ivr(self, outcome: Any, channel: str = "") -> Deferred[str | None]:
        """As :meth:`voicemail_from_ivr`, but with a journal the intake's entry is
        submitted before this returns (the call flow's hook submits it in one
        journal batch with the flag reason: ``recordings.wiring._chain``)."""
        if not outcome.recording:
            log.warn("voicemail outcome of call {call} has no recording", call=outcome.call_id)
            return succeed(None)
        number = outcome.callback_number or outcome.caller_number
        return self._take(
            outcome.recording, outcome.call_id, outcome.caller_number, number,
            outcome.language, outcome.ended_at, outcome, source="ivr",
        )

    def intake_from_hold(self, event: Any, recording_name: str | None) -> Deferred[str | None]:
        """As :meth:`voicemail_from_hold`, the journal entry submitted before it returns."""
        if event.choice != "voicemail" or not recording_name:
            return succeed(None)
        outcome = self._outcomes.pop(event.call_id, None)
        caller = outcome.caller_number if outcome is not None else event.caller_number
        return self._take(
            recording_name, event.call_id, caller, event.caller_number,
            event.language, event.at, outcome, source="hold",
        )

    def _take(
        self, record_name: str, call_id: str, caller: str, number: str, language: str,
        recorded_at: float, outcome: Any | None, *, source: str,
    ) -> Deferred[str | None]:
        vm_id = self.store.vm_id_of(record_name)
        if vm_id is None:
            # Not a name this store gave: never build a path from it.
            log.error("recording {name!r} of call {call} was not named by Shenava; ignored",
                      name=record_name, call=call_id)
            return succeed(None)
        now = self._now()
        ivr = _ivr_data(outcome)
        ivr["source"] = source
        if number and number != caller:
            ivr["callback_number"] = number
        facts = _complaint_facts(outcome)
        if self.journal is None:
            from shenava_base.aio import as_deferred

            stored = as_deferred(self._store_voicemail(
                vm_id, record_name, call_id, caller, number, language, recorded_at, ivr, facts, now
            ))
            return stored.addCallback(lambda _: vm_id)
        entry = {
            "vm_id": vm_id, "record_name": record_name, "call_id": call_id, "caller": caller,
            "number": number, "language": language, "recorded_at": recorded_at, "ivr": ivr,
            "facts": facts, "now": now,
        }
        from shenava_base.journal import call_key, number_key

        keys = (call_key(call_id), number_key(number), number_key(caller))
        # On disk is enough: the caller hears "message saved" once this fires
        # (ivr.runner.KEPT_BEFORE_TOLD), and Redis may be slow or away.
        kept: Deferred[Any] = self.journal.submit(JOURNAL_KIND, entry, keys, wait_applied=False)
        return kept.addCallback(lambda _: vm_id)

    async def recording_kept(self, call_id: str, record_name: str) -> bool:
        """Whether the voicemail recorded as ``record_name`` is kept already (in the
        journal, a previous run's entries included, or in Redis): the take-over
        then says "message saved" instead of recording the caller again."""
        if self.journal is not None:
            from shenava_base.journal import call_key

            if any(p.get("record_name") == record_name
                   for p in self.journal.pending(JOURNAL_KIND, call_key(call_id))):
                return True
        vm_id = self.store.vm_id_of(record_name)
        return vm_id is not None and await self.store.get(vm_id) is not None

    def _apply_entry(self, entry: dict[str, Any]) -> Any:
        from shenava_base.aio import as_deferred

        return as_deferred(self._store_voicemail(
            entry["vm_id"], entry["record_name"], entry["call_id"], entry["caller"], entry["number"],
            entry["language"], entry["recorded_at"], entry["ivr"], entry["facts"], entry["now"],
        ))

    async def _store_voicemail(
        self, vm_id: str, record_name: str, call_id: str, caller: str, number: str, language: str,
        recorded_at: float, ivr: dict[str, str], facts: dict[str, Any] | None, now: float,
    ) -> None:
        outcome = SimpleNamespace(**facts) if facts is not None else None
        reference = await self._complaint_for(call_id, number or caller, outcome, now,
                                              recording=record_name or vm_id)
        meta = VoicemailMeta(
            caller=caller or "", language=language or "", recorded_at=recorded_at,
            call_id=call_id, complaint_ref=reference or "", ivr=ivr, record_name=record_name,
        )
        if await self.store.register(vm_id, meta):
            self.registered += 1
            log.info("voicemail {vm} of {caller} stored ({lang}, complaint {ref}); transcription queued",
                     vm=vm_id, caller=mask_number(caller), lang=language, ref=reference or "-")
        await self._raise_flag(number or caller, (record_name, vm_id), now, reference)

    async def _complaint_for(
        self, call_id: str, number: str, outcome: Any | None, now: float, recording: str = ""
    ) -> str | None:
        """The complaint this voicemail belongs to: opened on this call, or the one the
        caller typed the reference of, or (none) a new one opened for the voicemail."""
        register = self.complaints
        if register is None:
            return None
        try:
            store = getattr(register, "store", None)
            if store is not None and number:
                for c in await store.for_number(number):
                    if c.call_id == call_id:
                        return str(c.reference)
            typed = getattr(outcome, "reference", None) if outcome is not None else None
            if typed and store is not None and await _exists(store, typed):
                return str(typed)
            from complaints.complaint import Channel

            opened = await register.open_complaint(
                now, category=getattr(outcome, "category", None) or VOICEMAIL_CATEGORY,
                channel=Channel.VOICEMAIL, number=number or None,
                language=getattr(outcome, "language", "") or "", call_id=call_id,
                account=getattr(outcome, "account", None),
                # playable from the review page at once, not only once transcribed
                recordings=(recording,) if recording else (),
            )
            return str(opened.reference)
        except RedisError:
            raise  # Redis away: the journal entry is retried as a whole
        except Exception:
            log.failure("no complaint for the voicemail of call {call}", call=call_id)
            return None

    async def _raise_flag(self, number: str, ids: tuple[str, str], now: float, reference: str | None) -> None:
        """Raise the caller's flag for this voicemail, unless a hook before ours did
        (the complaints wiring raises it with the ``RECORD FILE`` name as source)."""
        if self.callbacks is None or not number:
            return
        from routing.callbacks import InvalidNumberError, voicemail_reason

        vm_id = ids[1]
        try:
            if await self._flag_source(number, ids) is not None:
                return
        except InvalidNumberError:
            log.info("voicemail {vm}: withheld or unusable number, no callback flag", vm=vm_id)
            return
        reason = voicemail_reason(vm_id, now)
        if reference:
            from dataclasses import replace

            reason = replace(reason, complaint_ref=reference)
        try:
            # once per voicemail, even if its flag was dialled and closed before a replay
            await self.callbacks.raise_reason(number, reason, now, op_id=f"vm-{vm_id}")
        except InvalidNumberError:
            log.info("voicemail {vm}: withheld or unusable number, no callback flag", vm=vm_id)
        except RedisError:
            raise
        except Exception:
            log.failure("callback flag not raised for voicemail {vm}", vm=vm_id)

    async def _flag_source(self, number: str, ids: tuple[str, ...]) -> str | None:
        """Which of ``ids`` the number's open flag has a voicemail reason for, if any."""
        assert self.callbacks is not None
        from routing.callbacks import ReasonKind

        flag = await self.callbacks.open_flag_for(number)
        if flag is None:
            return None
        sources = {r.source for r in flag.reasons if r.kind is ReasonKind.VOICEMAIL}
        return next((i for i in ids if i and i in sources), None)

    # -- transcripts ---------------------------------------------------------------

    async def handle_transcribed(self, event: TranscribedEvent) -> None:
        """Attach one finished transcript; raises only if Redis itself failed (then retried)."""
        vm = await self.store.get(event.vm_id)
        if vm is None or vm.transcript is None:
            log.warn("transcribed voicemail {vm} has no transcript stored", vm=event.vm_id)
            return
        now = self._now()
        text = vm.transcript.text
        number = vm.meta.ivr.get("callback_number") or vm.meta.caller
        if event.urgent and caller_key(number):
            await self.store.mark_urgent(caller_key(number), vm.vm_id, vm.urgent_words, now, self.urgent_memory_s)
            log.info("voicemail {vm} is urgent ({words})", vm=vm.vm_id, words=", ".join(vm.urgent_words))
        ids = (vm.meta.record_name, vm.vm_id)
        if self.complaints is not None and vm.meta.complaint_ref:
            await _attach(self._attach_complaint(vm.meta.complaint_ref, ids, text, now), "complaint", vm.vm_id)
        if self.callbacks is not None and number:
            await _attach(self._attach_flag(number, ids, text, vm.meta.recorded_at, now), "callback flag", vm.vm_id)
        self.attached += 1

    async def _attach_complaint(self, reference: str, ids: tuple[str, str], text: str, now: float) -> None:
        assert self.complaints is not None
        store = getattr(self.complaints, "store", None)
        recording_id = ids[1]
        if store is not None and ids[0]:
            complaint = await store.find(reference)
            if complaint is not None and ids[0] in complaint.recordings:
                recording_id = ids[0]  # the complaints wiring's name for it: not listed twice
        await self.complaints.attach_transcript(reference, text, now, recording_id=recording_id)

    async def _attach_flag(self, number: str, ids: tuple[str, str], text: str, recorded_at: float, now: float) -> None:
        assert self.callbacks is not None
        from routing.callbacks import voicemail_reason

        source = await self._flag_source(number, ids)
        if source is not None:
            await self.callbacks.attach_transcript(number, source, text, now)
        elif await self.callbacks.open_flag_for(number) is not None:
            # an open flag without this voicemail's reason (raising it failed earlier)
            await self.callbacks.raise_reason(number, voicemail_reason(ids[1], recorded_at, text), now)
        else:
            log.info("voicemail {vm}: the caller's flag is closed (called back already); "
                     "the transcript stays on the voicemail and complaint", vm=ids[1])

    async def urgent_facts(self, number: str) -> dict[str, Any]:
        """``WaitingCall`` facts from the caller's urgent voicemail (``urgent_words``), if any."""
        key = caller_key(number)
        words = await self.store.urgent_words_for(key) if key else ()
        return {"urgent_words": words} if words else {}


async def _exists(store: Any, reference: str) -> bool:
    from complaints.errors import InvalidReferenceError

    try:
        return await store.find(reference) is not None
    except InvalidReferenceError:
        return False


async def _attach(coro: Any, what: str, vm_id: str) -> None:
    """Attach to a complaint or a flag; a missing or closed one is logged, not retried."""
    from redis.exceptions import RedisError

    try:
        await coro
    except RedisError:
        raise
    except Exception as exc:  # UnknownFlagError, FlagClosedError, UnknownComplaintError...
        log.warn("transcript of voicemail {vm} not attached to its {what}: {error}",
                 vm=vm_id, what=what, error=f"{type(exc).__name__}: {exc}")


async def _awaited(d: Deferred[str | None]) -> str | None:
    """A Deferred's result, from an asyncio coroutine."""
    return await d.asFuture(asyncio.get_running_loop())


def _complaint_facts(outcome: Any | None) -> dict[str, Any] | None:
    """What ``_complaint_for`` reads of an IVR outcome, as JSON (the journal keeps it)."""
    if outcome is None:
        return None
    return {k: getattr(outcome, k, None) for k in ("category", "language", "account", "reference")}


def _ivr_data(outcome: Any | None) -> dict[str, str]:
    if outcome is None:
        return {}
    values: Mapping[str, object | None] = {
        "category": outcome.category,
        "urgent": outcome.urgent,
        "vulnerable": outcome.vulnerable,
        "care": outcome.care,
        "account": outcome.account,
        "reference": outcome.reference,
        "callback_number": outcome.callback_number,
        "path": "/".join(outcome.path),
        "ended": str(outcome.ended.value),
    }
    return ivr_fields(values)
