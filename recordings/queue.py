"""The workers' side of the transcription queue (synchronous redis, inside worker processes).

A job is an entry ``{vm: <id>}`` of the ``jobs`` stream, read through the
consumer group ``transcribers``. Its life:

1. :meth:`JobQueue.next_job` first claims a job whose worker went quiet for
   ``claim_idle_s`` (``XAUTOCLAIM``: that worker died), else reads a new one.
2. :meth:`JobQueue.start` counts the attempt; a voicemail already done is
   skipped, one over ``max_attempts`` is parked with its last error.
3. While decoding, :meth:`JobQueue.heartbeat` resets the job's idle time, so a
   long file is not taken from a live worker; it reports a job taken over.
4. :meth:`JobQueue.complete` stores the transcript, publishes it and
   acknowledges the job in one script: a job is never acknowledged before its
   transcript is stored, and a transcript is stored and published once.
   :meth:`JobQueue.fail` records the error and parks a bad file at once, or
   leaves the job pending for a retry after ``claim_idle_s``.

A site's workers read only its stream (:class:`recordings.layout.Keys`, ``site``):
a voicemail file is on its own site's host. When a named site's workers start,
:meth:`JobQueue.adopt_legacy` moves to their stream the jobs its daemon queued
on the shared stream before jobs were kept per site.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from recordings.layout import GROUP, SCRIPTS, Keys
from recordings.store import Voicemail, _s, voicemail_from_hash
from recordings.transcript import Transcript
from recordings.triage import Triage

__all__ = ["Job", "JobQueue", "StartResult"]


@dataclass(frozen=True, slots=True)
class Job:
    entry_id: str
    vm_id: str
    reclaimed: bool = False


@dataclass(frozen=True, slots=True)
class StartResult:
    action: str
    """``go`` (transcribe it), ``skip`` (already done) or ``parked`` (too many attempts)."""
    attempts: int = 0
    language: str = ""
    file: str = ""
    detail: str = ""


class JobQueue:
    def __init__(
        self,
        client: redis.Redis,
        consumer: str,
        *,
        key_prefix: str = "shenava",
        max_attempts: int = 3,
        claim_idle_s: float = 60.0,
        site: str = "",
    ) -> None:
        self._redis = client
        self.consumer = consumer
        self.keys = Keys(key_prefix, site)
        self.max_attempts = max_attempts
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self._scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}
        self._claim_cursor = "0-0"

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    def ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.keys.jobs, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def enqueue_existing(self, vm_id: str) -> str:
        """Queue a job for a registered voicemail (tests, tools); returns the entry id."""
        return _s(self._redis.xadd(self.keys.jobs, {"vm": vm_id}))

    def next_job(self, block_s: float) -> Job | None:
        job = self.claim_idle()
        if job is not None:
            return job
        reply: Any = self._redis.xreadgroup(
            GROUP, self.consumer, {self.keys.jobs: ">"}, count=1, block=max(1, int(block_s * 1000))
        )
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                return Job(_s(entry_id), _fields(fields).get("vm", ""))
        return None

    def claim_idle(self) -> Job | None:
        """One job that some worker left untouched for ``claim_idle_s``, now ours."""
        reply: Any = self._redis.xautoclaim(
            self.keys.jobs, GROUP, self.consumer, self.claim_idle_ms, start_id=self._claim_cursor, count=1
        )
        cursor, claimed = reply[0], reply[1]
        self._claim_cursor = _s(cursor)
        for entry_id, fields in claimed:
            if fields is None:  # deleted meanwhile
                continue
            return Job(_s(entry_id), _fields(fields).get("vm", ""), reclaimed=True)
        return None

    def start(self, job: Job, now: float) -> StartResult:
        keys = [self.keys.record(job.vm_id), self.keys.jobs, self.keys.parked, self.keys.counts]
        reply = self._scripts["start"](keys=keys, args=[GROUP, job.entry_id, self.max_attempts, repr(now)])
        action = _s(reply[0])
        if action == "go":
            return StartResult("go", int(reply[1]), _s(reply[2]), _s(reply[3]))
        return StartResult(action, detail=_s(reply[1]))

    def heartbeat(self, job: Job) -> bool:
        """Reset the job's idle time; False if another worker has taken it over."""
        reply = self._scripts["heartbeat"](keys=[self.keys.jobs], args=[GROUP, self.consumer, job.entry_id])
        return bool(reply)

    def complete(self, job: Job, transcript: Transcript, found: Triage, now: float) -> bool:
        """Store and publish the transcript, then acknowledge; False if another worker did."""
        fields = {
            "transcript": transcript.to_json(),
            "text": transcript.text,
            "urgent": "1" if found.urgent else "0",
            "urgent_words": json.dumps(list(found.matched), ensure_ascii=False),
        }
        args: list[str] = [GROUP, job.entry_id, repr(now)]
        for k, v in fields.items():
            args += [k, v]
        keys = [self.keys.record(job.vm_id), self.keys.jobs, self.keys.transcribed, self.keys.counts]
        return bool(self._scripts["complete"](keys=keys, args=args))

    def fail(self, job: Job, error: str, *, permanent: bool, now: float) -> str:
        """Record ``error``; park at once if ``permanent`` or out of attempts. ``parked``/``retry``/``skip``."""
        keys = [self.keys.record(job.vm_id), self.keys.jobs, self.keys.parked, self.keys.counts]
        args = [GROUP, job.entry_id, error, "1" if permanent else "0", self.max_attempts, repr(now)]
        return _s(self._scripts["fail"](keys=keys, args=args))

    def await_model(self, job: Job, lang: str) -> None:
        """No model for ``lang``: keep the voicemail pending, set aside until one is added."""
        keys = [self.keys.record(job.vm_id), self.keys.jobs, self.keys.awaiting(lang)]
        self._scripts["await_model"](keys=keys, args=[GROUP, job.entry_id, lang])

    def requeue_awaiting(self, lang: str) -> int:
        keys = [self.keys.awaiting(lang), self.keys.jobs]
        return int(self._scripts["requeue_awaiting"](keys=keys, args=[self.keys.record_prefix]))

    def adopt_legacy(self, has_file: Callable[[str], bool], *, batch: int = 500) -> int:
        """Move this named site's jobs off the shared stream of earlier versions (and its
        voicemails waiting for a model off the shared awaiting sets); how many moved.

        A record that names this site is this site's; one that names no site (queued
        before records said their site) is taken when ``has_file(vm_id)``: its file is in
        this worker's folder, so it was recorded here. Others are left for their own
        site's workers (the default site's read the shared stream)."""
        site = self.keys.site
        if not site:
            return 0
        legacy = Keys(self.keys.prefix)
        moved = 0
        start = "-"
        while True:
            entries: Any = self._redis.xrange(legacy.jobs, min=start, max="+", count=batch)
            for entry_id, fields in entries:
                vm_id = _fields(fields).get("vm", "")
                if not vm_id:
                    continue
                keys = [self.keys.record(vm_id), legacy.jobs, self.keys.jobs]
                args = [GROUP, _s(entry_id), vm_id, site, "1" if has_file(vm_id) else "0"]
                moved += int(self._scripts["adopt"](keys=keys, args=args))
            if len(entries) < batch:
                break
            start = "(" + _s(entries[-1][0])
        for key in self._redis.scan_iter(match=legacy.legacy_awaiting("*"), count=100):
            lang = _s(key)[len(legacy.legacy_awaiting("")):]
            for member in self._redis.smembers(key):
                vm_id = _s(member)
                keys = [self.keys.record(vm_id), _s(key), self.keys.awaiting(lang)]
                args = [vm_id, site, "1" if has_file(vm_id) else "0"]
                moved += int(self._scripts["adopt_awaiting"](keys=keys, args=args))
        return moved

    def get(self, vm_id: str) -> Voicemail | None:
        raw: Any = self._redis.hgetall(self.keys.record(vm_id))
        return voicemail_from_hash(raw) if raw else None


def _fields(fields: Any) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (fields or {}).items()}
