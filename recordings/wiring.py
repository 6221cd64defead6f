"""How the recordings package joins the daemon's object graph (see shenava.app).

``install(app)`` (called after ``complaints.wiring.install``) builds the
:class:`~recordings.store.VoicemailStore` from ``app.config.recordings`` and:

- gives the call flow Shenava's recording-name allocator
  (``callflow.recording_name``): the IVR runner and the hold-choice recorder
  both ask it for every ``RECORD FILE`` name;
- registers voicemails from the IVR (``callflow.on_voicemail``) and from the
  hold choice (``callflow.on_hold_choice``), each chained after any handler
  installed before (the complaints wiring's), which runs first;
- adds ``urgent_words`` to the caller facts routing scores a waiting call by:
  its read joins the complaints wiring's pipeline of the caller's facts
  (``add_facts_reader``; ``callflow.caller_facts`` chained likewise without it);
- follows the ``transcribed`` stream on the reactor from a stored position and
  attaches each transcript to its complaint and callback flag.

The daemon never imports Vosk: transcription is ``shenava worker``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from recordings.config import RecordingsConfig
from recordings.follower import TranscriptFollower
from recordings.intake import VoicemailService, caller_key
from recordings.models import resolve_models
from recordings.store import RecordingFolder, VoicemailStore, urgent_words_from
from shenava_base.aio import as_deferred
from shenava_base.outage import OutageNote

if TYPE_CHECKING:
    from complaints.service import ComplaintRegister
    from complaints.wiring import ComplaintsExtension
    from routing.callback_store import CallbackStore

__all__ = ["RecordingsHandle", "install", "summary"]

log = Logger()


@dataclass
class RecordingsHandle:
    """What ``app.recordings`` holds."""

    config: RecordingsConfig
    store: VoicemailStore
    service: VoicemailService
    follower: TranscriptFollower

    def start(self) -> None:
        """Follow transcripts (``install`` calls it, as the complaints wiring does its own)."""
        self.follower.start()

    def stop(self) -> None:
        """Stop following transcripts (call from ``Shenava.stop``)."""
        self.follower.stop()

    async def delete_recording(self, recording_id: str) -> None:
        """Retention (the register's ``delete_recording`` hook): the file and transcript go.

        Takes either the voicemail id or the ``RECORD FILE`` name; idempotent.
        """
        await self.store.purge(recording_id, self.service.now())

    def recording_file(self, recording_id: str) -> Path | None:
        """Where this daemon reads a recording a complaint lists (the voicemail id or the
        ``RECORD FILE`` name); None if it is not one of ours."""
        vm_id = self.store.vm_id_for(recording_id)
        return None if vm_id is None else self.store.folder.path(vm_id)

    async def summary(self) -> dict[str, Any]:
        counts = await self.store.counts()
        try:
            languages = sorted(resolve_models(self.config))
        except Exception:  # an unreadable registry must not break a summary
            languages = []
        return {
            **counts,
            "waiting_for_model": await self.store.waiting_for_model(),
            "jobs_queued": await self.store.queue_length(),
            "transcripts_attached": self.service.attached,
            "models_configured": languages,
        }


def install(app: Any) -> RecordingsHandle | None:
    """Add this package's storage and subscriptions to app; returns its handle."""
    if app.redis is None:
        return None
    config: RecordingsConfig = app.config.recordings
    store = VoicemailStore(
        app.redis, RecordingFolder(config.dir, config.asterisk_dir), key_prefix=app.config.redis.key_prefix,
        site=app.config.site.id,
    )
    register, callbacks = _complaints_parts(app.complaints)
    if register is None or callbacks is None:
        log.warn("recordings: complaints wiring gave {what}: transcripts stay on the voicemail only",
                 what="no register" if register is None else "no callback store")
    service = VoicemailService(
        store, app.reactor.seconds, complaints=register, callbacks=callbacks,
        journal=app.journal,
    )
    flow = app.callflow
    flow.recording_name = service.recording_name
    flow.recording_kept = lambda call_id, name: as_deferred(service.recording_kept(call_id, name))
    flow.subscribe(service.remember_outcome)
    flow.on_voicemail = _chain(flow.on_voicemail, service.intake_from_ivr, "voicemail", app.journal)
    flow.on_hold_choice = _chain(flow.on_hold_choice, service.intake_from_hold, "hold choice", app.journal)
    add_reader = getattr(app.complaints, "add_facts_reader", None)
    if add_reader is not None:
        # read in the complaints' pipeline of the caller's facts: a Redis outage
        # fails them together, said once per outage by the call flow
        add_reader(_UrgentWords(store))
    else:
        flow.caller_facts = _chain_facts(flow.caller_facts, service, OutageNote(
            "recordings: urgent words of callers", "callers wait without them", log, app.reactor.seconds,
        ))
    as_deferred(store.ensure_group()).addErrback(
        lambda f: log.error("recordings: job group not created: {e}", e=f.getErrorMessage())
    )
    handle = RecordingsHandle(config, store, service,
                              TranscriptFollower(store, service.handle_transcribed, app.reactor))
    handle.start()
    return handle


async def summary(app: Any) -> dict[str, Any]:
    """Voicemails recorded, transcribed, pending and parked (the demo's JSON ``voicemail``)."""
    handle = app.recordings
    if handle is None:
        return {"recorded": 0, "pending": 0, "transcribed": 0, "parked": 0, "enabled": False}
    return {"enabled": True, **await handle.summary()}


# -- helpers ---------------------------------------------------------------------


def _complaints_parts(
    handle: ComplaintsExtension | None,
) -> tuple[ComplaintRegister | None, CallbackStore | None]:
    """The complaints wiring's register and callback store (``app.complaints``), if installed."""
    if handle is None:
        return None, None
    return handle.register, handle.callbacks


def _chain(
    previous: Callable[..., object] | None, ours: Callable[..., Any], what: str,
    journal: Any | None = None,
) -> Callable[..., Deferred[Any]]:
    """A hook that starts ``previous`` (if any) first, then ours, even if ``previous`` failed.

    Both keep their records in the journal (the complaints wiring's callback
    flag reason, our voicemail intake), submitted inside one ``journal.batch()``:
    one line of the journal, one append, one fsync, so a ``kill -9`` keeps both
    or neither. Ours must therefore submit before it returns (a Deferred:
    :meth:`VoicemailService.intake_from_ivr`); an asyncio coroutine would start
    a loop turn later, outside the batch. Before, the intake's entry followed
    the flag's a loop turn later, each could be fsynced alone, and a kill
    between them kept the flag reason without its voicemail (the take-over
    found the caller "recording" and they recorded a second one:
    ``benchmarks/chaos.py``, the doubled flag of the 10 calls/s run, seed 5).
    Neither waits for the other (waiting for the first, up to the journal's
    answer time while Redis is slow, lost the same way)."""

    def hook(*args: Any) -> Deferred[Any]:
        with journal.batch() if journal is not None else nullcontext():
            first = maybeDeferred(previous, *args) if previous is not None else None
            result = ours(*args)
            mine = result if isinstance(result, Deferred) else as_deferred(result)

        # A Twisted coroutine (it awaits both Deferreds).
        async def both() -> Any:
            if first is not None:
                try:
                    await first
                except Exception:
                    log.failure("recordings: the {what} handler before ours failed", what=what)
            return await mine

        return ensureDeferred(both())

    return hook


class _UrgentWords:
    """The caller's urgent voicemail words, read with the complaints' caller facts (one pipeline)."""

    def __init__(self, store: VoicemailStore) -> None:
        self._store = store

    def queue(self, pipe: Any, number: str) -> int:
        key = caller_key(number)
        return self._store.queue_urgent_words(pipe, key) if key else 0

    async def facts(self, number: str, replies: Sequence[Any]) -> dict[str, Any]:
        words = urgent_words_from(replies[0]) if replies else ()
        return {"urgent_words": words} if words else {}


def _chain_facts(
    previous: Callable[[str], Any] | None, service: VoicemailService, outage: OutageNote | None = None,
) -> Callable[[str], Deferred[dict[str, Any]]]:
    """The call flow's ``caller_facts`` hook: ``previous`` (a dict, or a Deferred of one), then ours.

    Ours failing because Redis is away is said once per outage (``outage``), not
    as a traceback per caller; the facts from ``previous`` are kept."""
    def facts(number: str) -> Deferred[dict[str, Any]]:
        async def merged() -> dict[str, Any]:
            out: dict[str, Any] = {}
            if previous is not None:
                out = dict(await maybeDeferred(previous, number))
            try:
                ours = await as_deferred(service.urgent_facts(number))
                if outage is not None:
                    outage.ok()
            except Exception as exc:
                if outage is not None and outage.expected(exc):
                    outage.failed(exc)
                else:
                    log.failure("recordings: urgent words of a caller unavailable")
                ours = {}
            if ours:
                out["urgent_words"] = tuple(dict.fromkeys((*out.get("urgent_words", ()), *ours["urgent_words"])))
            return out

        return ensureDeferred(merged())

    return facts
