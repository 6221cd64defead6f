"""Transcription workers: separate processes that take jobs, decode with Vosk, store results.

Vosk is CPU-bound and a model takes ~0.5 GiB, so decoding never happens in the
daemon (its reactor thread must stay responsive). Each worker process loads one
model per configured language, then loops: take a job (claiming those of dead
workers first), check the file, decode it, store the transcript with its
triage, acknowledge. A synchronous redis client is right here: the process has
no reactor.

:class:`WorkerPool` starts processes with the ``spawn`` method (no inherited
reactor, sockets or models) and stops them gracefully: a worker finishes the
file in hand, then exits. A killed worker loses nothing: its job stays pending
in the consumer group and another worker claims it after ``claim_idle_s``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import redis

from recordings.errors import AudioError, JobLostError, ModelMissingError, RecordingsError
from recordings.queue import Job, JobQueue
from recordings.store import RecordingFolder
from recordings.triage import triage

__all__ = ["Worker", "WorkerPool", "WorkerSettings", "check_model_paths", "worker_main"]

BLOCK_S = 1.0
"""How long one read waits for a job: also how soon an idle worker notices a stop."""
EXIT_MODEL_MISSING = 3
EXIT_FAILED = 1
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError)
"""Redis restarting or unreachable (``BusyLoadingError`` is a ``ConnectionError``):
the worker waits for it, it does not exit."""
REDIS_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
"""The waits between tries while Redis is away; the last one repeats."""


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker process needs; plain values, so it pickles for ``spawn``."""

    redis_url: str
    recordings_dir: str
    models: Mapping[str, str]
    """Language -> absolute model folder."""
    key_prefix: str = "shenava"
    urgent_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    urgent_min_conf: float = 0.0
    max_attempts: int = 3
    claim_idle_s: float = 60.0
    block_s: float = BLOCK_S
    consumer: str = ""
    site: str = ""
    """``[site] id``: the site whose jobs this worker takes (its voicemail files are in
    ``recordings_dir``); "" the default site's."""
    other_sites: bool = False
    """Whether other sites share the Redis (read at start): a missing file of a record
    that names no site may then be another site's, not yet moved to its stream."""

    @property
    def heartbeat_s(self) -> float:
        return self.claim_idle_s / 3


def default_consumer(index: int = 0) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


def check_model_paths(models: Mapping[str, str | Path]) -> None:
    """Fail fast, before spawning, on a configured model folder that does not exist."""
    for lang, path in sorted(models.items()):
        p = Path(path)
        if not p.is_absolute():
            raise ModelMissingError(p, lang, "the model path must be absolute")
        if not p.is_dir():
            raise ModelMissingError(p, lang)


class Worker:
    """One worker's loop over the queue; ``transcribe`` and ``now`` are injected."""

    def __init__(
        self,
        queue: JobQueue,
        folder: RecordingFolder,
        models: Mapping[str, Any],
        transcribe: Callable[..., Any],
        settings: WorkerSettings,
        *,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.queue = queue
        self.folder = folder
        self.models = models
        self._transcribe = transcribe
        self.settings = settings
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._say = say or (lambda text: print(f"shenava worker: {text}", file=sys.stderr, flush=True))
        self.should_stop: Callable[[], bool] = lambda: False
        self.done = 0
        self.redis_waits = 0
        """How many times this worker found Redis away and waited for it."""

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Take jobs until ``should_stop()``. Redis going away (a restart, a kill) does not
        end the loop: the worker waits for it and carries on (before, the process died with
        a traceback and its job, its attempt counted, waited ``claim_idle_s`` for another
        worker: three Redis restarts during one file parked a good voicemail)."""
        self.should_stop = should_stop
        while not should_stop():
            try:
                self.run_once()
            except REDIS_AWAY as exc:
                self.wait_for_redis(exc)

    def call_redis(self, call: Callable[[], Any], what: str) -> tuple[bool, Any]:
        """``call()`` again until Redis answers; ``(False, None)`` if told to stop meanwhile."""
        while True:
            try:
                return True, call()
            except REDIS_AWAY as exc:
                if not self.wait_for_redis(exc, what):
                    return False, None

    def wait_for_redis(self, exc: Exception, what: str = "the queue") -> bool:
        """Wait until Redis answers a PING (0.2 s, backing off to 5 s between tries); False
        if told to stop meanwhile."""
        self.redis_waits += 1
        self._say(f"Redis away ({type(exc).__name__}: {exc}); {what} waits for it")
        step = 0
        while not self.should_stop():
            self._sleep(REDIS_RETRY_S[min(step, len(REDIS_RETRY_S) - 1)])
            step += 1
            try:
                self.queue.redis.ping()
            except REDIS_AWAY:
                continue
            self._say("Redis is back")
            return True
        return False

    def run_once(self) -> str | None:
        """Take and handle at most one job; what happened to it, or None if none came."""
        job = self.queue.next_job(self.settings.block_s)
        if job is None:
            return None
        return self.handle(job)

    def handle(self, job: Job) -> str:
        started = self.queue.start(job, self._now())
        if started.action != "go":
            return started.action
        lang = started.language
        loaded = self.models.get(lang)
        if loaded is None:
            self.queue.await_model(job, lang)
            return "awaiting_model"
        try:
            path = self.folder.path(job.vm_id)
            transcript = self._transcribe(loaded, path, on_progress=self._heartbeat(job))
        except JobLostError:
            return "lost"
        except AudioError as exc:
            return self.queue.fail(job, f"{exc.code}: {exc}", permanent=True, now=self._now())
        except FileNotFoundError:
            error = f"recordings.file_missing: {self.folder.path(job.vm_id)} does not exist"
            # On the shared stream of a centre, a job of earlier versions may be another
            # site's that its workers have not moved yet: retried (and parked after the
            # attempts) rather than parked at once.
            shared = self.settings.other_sites and not self.settings.site
            return self.queue.fail(job, error, permanent=not shared, now=self._now())
        except (OSError, RecordingsError, RuntimeError) as exc:
            return self.queue.fail(job, f"{type(exc).__name__}: {exc}", permanent=False, now=self._now())
        found = triage(
            transcript.words,
            self.settings.urgent_words.get(lang, ()),
            min_conf=self.settings.urgent_min_conf,
        )
        # The file is decoded: keep the work if Redis is away now (the script is
        # idempotent, so a try whose answer was lost is answered "duplicate" next time).
        ok, stored = self.call_redis(
            lambda: self.queue.complete(job, transcript, found, self._now()), f"the transcript of {job.vm_id}")
        if not ok:
            return "stopped"
        self.done += 1
        return "transcribed" if stored else "duplicate"

    def _heartbeat(self, job: Job) -> Callable[[float], None]:
        last = [self._monotonic()]

        def beat(_decoded_s: float) -> None:
            t = self._monotonic()
            if t - last[0] >= self.settings.heartbeat_s:
                last[0] = t
                try:
                    kept = self.queue.heartbeat(job)
                except REDIS_AWAY:
                    return  # Redis away: decode on; the transcript waits for it (handle)
                if not kept:
                    raise JobLostError(f"job {job.entry_id} was claimed by another worker")

        return beat


def worker_main(settings: WorkerSettings, stop: Event | None = None, ready: Event | None = None) -> None:
    """A worker process's body: load models, then work until ``stop`` is set or SIGTERM."""
    from recordings.vosk_engine import load_model, quiet_vosk, transcribe_file

    stopping = [False]

    def on_term(_signum: int, _frame: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and sets ``stop``
    quiet_vosk()
    try:
        models = {lang: load_model(Path(p), lang) for lang, p in settings.models.items()}
    except RecordingsError as exc:
        print(f"shenava worker: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_MODEL_MISSING) from None
    from shenava_base.redis_urls import sync_client_from_url

    client = sync_client_from_url(settings.redis_url, decode_responses=True, health_check_interval=30)
    consumer = settings.consumer or default_consumer()
    queue = JobQueue(
        client, consumer, key_prefix=settings.key_prefix,
        max_attempts=settings.max_attempts, claim_idle_s=settings.claim_idle_s, site=settings.site,
    )
    folder = RecordingFolder(Path(settings.recordings_dir))
    worker = Worker(queue, folder, models, transcribe_file, settings)
    worker.should_stop = should_stop = lambda: stopping[0] or (stop is not None and stop.is_set())

    def prepare() -> WorkerSettings:
        queue.ensure_group()
        prepared = prepare_site(queue, folder, settings)
        for lang in models:
            queue.requeue_awaiting(lang)
        return prepared

    try:
        ok, prepared = worker.call_redis(prepare, "the start")  # a worker started while Redis is away waits
        if not ok:
            return
        worker.settings = prepared
        if ready is not None:
            ready.set()
        worker.run(should_stop)
    finally:
        client.close()


def prepare_site(queue: JobQueue, folder: RecordingFolder, settings: WorkerSettings) -> WorkerSettings:
    """At a worker's start: a named site's worker moves its jobs off the shared stream of
    earlier versions (those whose record names it, or whose file is in its folder); every
    worker learns whether other sites share the Redis."""
    from dataclasses import replace

    from shenava_base.sites import sites_key

    if settings.site:
        moved = queue.adopt_legacy(lambda vm_id: folder.path(vm_id).exists())
        if moved:
            print(f"shenava worker: {moved} queued voicemail(s) of site {settings.site} moved to its "
                  "own queue", file=sys.stderr)
    registered = [_text(s) for s in queue.redis.hkeys(sites_key(settings.key_prefix))]
    return replace(settings, other_sites=any(s != settings.site for s in registered))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkerPool:
    """N worker processes (``spawn``); never more than the machine's memory allows."""

    def __init__(self, settings: WorkerSettings, count: int, *, name: str = "") -> None:
        self.settings = settings
        self.count = count
        self._name = name or default_consumer()
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self.processes: list[SpawnProcess] = []
        self._ready: list[Event] = []

    def consumer(self, index: int) -> str:
        return f"{self._name}-w{index}"

    def start(self) -> None:
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> SpawnProcess:
        settings = _with_consumer(self.settings, self.consumer(index))
        ready = self._ctx.Event()
        process = self._ctx.Process(
            target=worker_main, args=(settings, self._stop, ready), name=f"shenava-worker-{index}", daemon=False
        )
        process.start()
        if index < len(self.processes):
            self.processes[index], self._ready[index] = process, ready
        else:
            self.processes.append(process)
            self._ready.append(ready)
        return process

    def wait_ready(self, timeout_s: float) -> bool:
        """True once every worker has loaded its models; False if one died or time ran out."""
        deadline = time.monotonic() + timeout_s
        for process, ready in zip(self.processes, self._ready, strict=True):
            while not ready.wait(0.1):
                if not process.is_alive() or time.monotonic() > deadline:
                    return False
        return True

    def restart_dead(self) -> list[int]:
        """Start again any worker that exited on its own (not after a stop); their indexes."""
        restarted: list[int] = []
        if self._stop.is_set():
            return restarted
        for index, process in enumerate(self.processes):
            if not process.is_alive() and process.exitcode not in (0, EXIT_MODEL_MISSING):
                process.close()
                self._spawn(index)
                restarted.append(index)
        return restarted

    def peak_rss_mb(self) -> float:
        """The largest resident set (``VmHWM``) among live workers, in MiB (Linux)."""
        peak = 0.0
        for process in self.processes:
            if process.pid is None:
                continue
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        return peak

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask every worker to finish its file and exit; terminate, then kill, stragglers."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)

    @property
    def alive(self) -> int:
        return sum(1 for p in self.processes if p.is_alive())


def _with_consumer(settings: WorkerSettings, consumer: str) -> WorkerSettings:
    from dataclasses import replace

    return replace(settings, consumer=consumer, models=dict(settings.models), urgent_words=dict(settings.urgent_words))
