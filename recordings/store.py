"""The daemon's side of voicemail: naming the files, registering them, reading results.

Runs on the reactor thread through redis.asyncio (``shenava_base.aio.as_deferred``):
it never touches audio or Vosk. A voicemail's file name is made here, from the
time and a random token (``vm-20250101-093000-1a2b3c4d5e6f.wav``); nothing from
the channel or the caller's keys reaches a path. The IVR asks for a name
before ``RECORD FILE``, so Asterisk writes straight to the final place and no
file is moved on the reactor thread.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisClusterException

from recordings.errors import UnknownVoicemailError
from recordings.layout import GROUP, SCRIPTS, VOICEMAIL_ID_RE, Keys, Status
from recordings.transcript import Transcript

__all__ = [
    "Allocation",
    "RecordingFolder",
    "TranscribedEvent",
    "Voicemail",
    "VoicemailMeta",
    "VoicemailStore",
    "new_voicemail_id",
]

RECORD_FORMAT = "wav"
"""Asterisk's format name for 16-bit PCM WAV at 8 kHz (``WAV`` would be GSM)."""


def new_voicemail_id(now: float, token: str) -> str:
    """``vm-YYYYMMDD-HHMMSS-<12 hex>`` (UTC): sortable, unique, safe as a file name."""
    if len(token) != 12 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError("token must be 12 lowercase hex digits")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"vm-{stamp}-{token}"


def check_voicemail_id(vm_id: str) -> str:
    if not VOICEMAIL_ID_RE.match(vm_id):
        raise UnknownVoicemailError(f"not a voicemail id: {vm_id!r}")
    return vm_id


@dataclass(frozen=True, slots=True)
class Allocation:
    vm_id: str
    path: Path
    """Where the file will be, as this host sees it."""
    record_name: str
    """The ``RECORD FILE`` file argument (Asterisk's view of the path, no extension)."""
    record_format: str = RECORD_FORMAT


@dataclass(frozen=True)
class RecordingFolder:
    """Makes voicemail file names under the configured folder."""

    dir: Path
    asterisk_dir: Path | None = None
    token: Callable[[], str] = field(default=lambda: secrets.token_hex(6))

    def allocate(self, now: float) -> Allocation:
        vm_id = new_voicemail_id(now, self.token())
        record_dir = self.asterisk_dir if self.asterisk_dir is not None else self.dir
        return Allocation(vm_id, self.path(vm_id), str(record_dir / vm_id))

    def path(self, vm_id: str) -> Path:
        return self.dir / f"{check_voicemail_id(vm_id)}.{RECORD_FORMAT}"


@dataclass(frozen=True, slots=True)
class VoicemailMeta:
    """What is known of a voicemail when the caller has finished recording it."""

    caller: str
    language: str
    recorded_at: float
    call_id: str = ""
    complaint_ref: str = ""
    ivr: Mapping[str, str] = field(default_factory=dict)
    """The IVR's data (category, urgency, vulnerable, account...), as strings."""
    record_name: str = ""
    """The ``RECORD FILE`` name it was recorded under (how the call flow, the
    complaint and the callback flag refer to the recording)."""


@dataclass(frozen=True, slots=True)
class Voicemail:
    vm_id: str
    meta: VoicemailMeta
    file: str
    status: str
    attempts: int
    last_error: str | None
    waiting_for_model: str | None
    transcript: Transcript | None
    urgent: bool
    urgent_words: tuple[str, ...]
    transcribed_at: float | None
    parked_at: float | None

    @property
    def transcript_pending(self) -> bool:
        return self.status == Status.PENDING


@dataclass(frozen=True, slots=True)
class TranscribedEvent:
    """One entry of the ``transcribed`` stream: what complaints and callbacks attach."""

    entry_id: str
    vm_id: str
    complaint_ref: str
    language: str
    caller: str
    urgent: bool
    urgent_words: tuple[str, ...]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def meta_fields(vm_id: str, meta: VoicemailMeta, file: str) -> dict[str, str]:
    return {
        "file": file,
        "caller": meta.caller,
        "call_id": meta.call_id,
        "language": meta.language,
        "recorded_at": repr(meta.recorded_at),
        "complaint_ref": meta.complaint_ref,
        "ivr": json.dumps(dict(meta.ivr), ensure_ascii=False, sort_keys=True),
        "record_name": meta.record_name,
    }


def voicemail_from_hash(raw: Mapping[Any, Any]) -> Voicemail:
    h = {_s(k): _s(v) for k, v in raw.items()}
    meta = VoicemailMeta(
        caller=h.get("caller", ""),
        language=h.get("language", ""),
        recorded_at=float(h.get("recorded_at", "0")),
        call_id=h.get("call_id", ""),
        complaint_ref=h.get("complaint_ref", ""),
        ivr=json.loads(h.get("ivr", "{}")),
        record_name=h.get("record_name", ""),
    )
    transcript = Transcript.from_json(h["transcript"]) if h.get("transcript") else None
    return Voicemail(
        vm_id=h["id"],
        meta=meta,
        file=h.get("file", ""),
        status=h.get("status", Status.PENDING),
        attempts=int(h.get("attempts", "0")),
        last_error=h.get("last_error") or None,
        waiting_for_model=h.get("waiting_for_model") or None,
        transcript=transcript,
        urgent=h.get("urgent") == "1",
        urgent_words=tuple(json.loads(h.get("urgent_words", "[]"))),
        transcribed_at=float(h["transcribed_at"]) if h.get("transcribed_at") else None,
        parked_at=float(h["parked_at"]) if h.get("parked_at") else None,
    )


def event_from_entry(entry_id: Any, fields: Mapping[Any, Any]) -> TranscribedEvent:
    f = {_s(k): _s(v) for k, v in fields.items()}
    return TranscribedEvent(
        entry_id=_s(entry_id),
        vm_id=f["vm"],
        complaint_ref=f.get("complaint_ref", ""),
        language=f.get("language", ""),
        caller=f.get("caller", ""),
        urgent=f.get("urgent") == "1",
        urgent_words=tuple(json.loads(f.get("urgent_words", "[]"))),
    )


class VoicemailStore:
    """Voicemail records and the transcription queue, from the daemon (redis.asyncio)."""

    def __init__(self, redis: Redis, folder: RecordingFolder, *, key_prefix: str = "shenava",
                 site: str = "") -> None:
        self._redis = redis
        self.folder = folder
        self.keys = Keys(key_prefix, site)
        """A named site queues on its own stream; its records say their site (layout's "Sites")."""
        self._scripts = {name: redis.register_script(src) for name, src in SCRIPTS.items()}
        self._node_of: Callable[[str], Any] | None = getattr(redis, "get_node_from_key", None)
        """A cluster client's slot map: ``XREAD`` goes to the stream's node (see ``transcribed_after``)."""

    def allocate(self, now: float) -> Allocation:
        """A fresh voicemail id and file name, to give ``RECORD FILE`` (no Redis yet)."""
        return self.folder.allocate(now)

    async def register(self, vm_id: str, meta: VoicemailMeta) -> bool:
        """Store the metadata and queue the transcription; False if ``vm_id`` was registered."""
        check_voicemail_id(vm_id)
        file = self.folder.path(vm_id).name
        args: list[str] = [vm_id, repr(meta.recorded_at)]
        for k, v in meta_fields(vm_id, meta, file).items():
            args += [k, v]
        if self.keys.site:
            args += ["site", self.keys.site]
        keys = [self.keys.record(vm_id), self.keys.index, self.keys.jobs, self.keys.counts]
        return bool(await self._scripts["register"](keys=keys, args=args))

    async def get(self, vm_id: str) -> Voicemail | None:
        raw = await self._redis.hgetall(self.keys.record(check_voicemail_id(vm_id)))
        return voicemail_from_hash(raw) if raw else None

    async def recent(self, limit: int = 50) -> list[Voicemail]:
        ids = await self._redis.zrevrange(self.keys.index, 0, limit - 1)
        found = [await self.get(_s(i)) for i in ids]
        return [v for v in found if v is not None]

    async def requeue_awaiting(self, lang: str) -> int:
        """Queue again the voicemails of ``lang`` that waited for a model."""
        keys = [self.keys.awaiting(lang), self.keys.jobs]
        return int(await self._scripts["requeue_awaiting"](keys=keys, args=[self.keys.record_prefix]))

    async def retry_parked(self, vm_id: str) -> bool:
        """Give a parked voicemail a fresh set of attempts (after fixing its file or model)."""
        keys = [self.keys.record(check_voicemail_id(vm_id)), self.keys.jobs, self.keys.counts]
        return bool(await self._scripts["retry_parked"](keys=keys, args=[vm_id]))

    async def parked_count(self) -> int:
        """Voicemails parked now (the ``counts`` hash; a retry takes one off)."""
        return int(_s(await self._redis.hget(self.keys.counts, "parked") or "0"))

    async def parked(self, limit: int = 1000) -> list[Voicemail]:
        """The voicemails parked now, oldest first: those the parked stream names whose
        record still says ``parked`` (a retried one is pending again)."""
        out: list[Voicemail] = []
        seen: set[str] = set()
        start = "-"
        while len(out) < limit:
            entries: Any = await self._redis.xrange(self.keys.parked, min=start, max="+", count=500)
            for entry_id, fields in entries:
                vm_id = {_s(k): _s(v) for k, v in (fields or {}).items()}.get("vm", "")
                if vm_id and vm_id not in seen:
                    seen.add(vm_id)
                    vm = await self.get(vm_id)
                    if vm is not None and vm.status == "parked":
                        out.append(vm)
                start = "(" + _s(entry_id)
            if len(entries) < 500:
                break
        return out[:limit]

    async def queue_length(self) -> int:
        """Jobs not yet finished: waiting ones plus those a worker holds."""
        return int(await self._redis.xlen(self.keys.jobs))

    async def transcribed_after(
        self, after: str = "0-0", *, count: int = 100, block_s: float | None = None
    ) -> list[TranscribedEvent]:
        """Transcripts stored after stream id ``after`` (the hook other packages follow)."""
        block = None if block_s is None else int(block_s * 1000)
        stream = self.keys.transcribed
        reply: Any
        node = self._stream_node(stream)
        if node is None:
            reply = await self._redis.xread({stream: after}, count=count, block=block)
        else:
            # redis-py finds XREAD's keys (after STREAMS) only by asking the server
            # (COMMAND GETKEYS) before every XREAD: the follower's poll cost two
            # commands a second. Its node from the client's slot map instead (a
            # MOVED reply corrects the map; the next poll goes to the new node).
            pieces: list[Any] = [] if block is None else ["BLOCK", block]
            pieces += ["COUNT", count, "STREAMS", stream, after]
            reply = await self._redis.execute_command("XREAD", *pieces, target_nodes=node)
        return [event_from_entry(eid, f) for _stream, entries in reply or () for eid, f in entries]

    def _stream_node(self, stream: str) -> Any:
        """The cluster node of ``stream`` (None: not a cluster, or its slot map not read yet)."""
        if self._node_of is None:
            return None
        try:
            return self._node_of(stream)
        except RedisClusterException:  # SlotNotCoveredError: before the first command, or mid-change
            return None

    async def ensure_group(self) -> None:
        await ensure_group_async(self._redis, self.keys.jobs)

    def vm_id_of(self, record_name: str) -> str | None:
        """The voicemail id in a name :meth:`allocate` gave (``RECORD FILE``'s), else None.

        Only a name this store could have made is accepted: the folder must be
        the one Asterisk records into and the id must match the id pattern.
        """
        record_dir = str(self.folder.asterisk_dir if self.folder.asterisk_dir is not None else self.folder.dir)
        folder, _, vm_id = record_name.rpartition("/")
        if folder != record_dir.rstrip("/") or not VOICEMAIL_ID_RE.match(vm_id):
            return None
        return vm_id

    async def counts(self) -> dict[str, int]:
        """Voicemails ``recorded``, ``pending``, ``transcribed``, ``parked`` (kept by the scripts)."""
        raw = await self._redis.hgetall(self.keys.counts)
        got = {_s(k): int(_s(v)) for k, v in raw.items()}
        return {k: got.get(k, 0) for k in ("recorded", "pending", "transcribed", "parked")}

    async def waiting_for_model(self) -> dict[str, int]:
        """Pending voicemails set aside for want of a model, by language."""
        out: dict[str, int] = {}
        prefix = self.keys.awaiting("")
        async for key in self._redis.scan_iter(match=prefix + "*", count=100):
            lang = _s(key)[len(prefix):]
            n = int(await self._redis.scard(key))
            if n:
                out[lang] = n
        return out

    def vm_id_for(self, recording_id: str) -> str | None:
        """A voicemail id from either form other packages hold: the id or the ``RECORD FILE`` name."""
        return recording_id if VOICEMAIL_ID_RE.match(recording_id) else self.vm_id_of(recording_id)

    async def purge(self, recording_id: str, now: float) -> bool:
        """Retention: delete the file and the transcript, keep the record (``purged_at``).

        Idempotent; False if ``recording_id`` is not one of ours. (The complaint
        register's ``delete_recording`` hook.)
        """
        vm_id = self.vm_id_for(recording_id)
        if vm_id is None:
            return False
        self.folder.path(vm_id).unlink(missing_ok=True)
        key = self.keys.record(vm_id)
        if await self._redis.exists(key):
            await self._redis.hdel(key, "transcript", "text", "urgent_words")
            await self._redis.hset(key, "purged_at", repr(now))
        return True

    async def followed(self, name: str) -> str:
        """The last ``transcribed`` entry follower ``name`` handled (``0-0``: none yet)."""
        value = await self._redis.get(self.keys.followed(name))
        return _s(value) if value else "0-0"

    async def set_followed(self, name: str, entry_id: str) -> None:
        await self._redis.set(self.keys.followed(name), entry_id)

    async def mark_urgent(self, number: str, vm_id: str, words: Sequence[str], now: float, ttl_s: float) -> None:
        """Remember for ``ttl_s`` that ``number`` left an urgent voicemail (routing reads it)."""
        value = json.dumps({"vm": vm_id, "words": list(words), "at": now}, ensure_ascii=False)
        await self._redis.set(self.keys.urgent(number), value, ex=max(1, int(ttl_s)))

    async def urgent_words_for(self, number: str) -> tuple[str, ...]:
        """The urgent words of the caller's last urgent voicemail still remembered, else ``()``."""
        return urgent_words_from(await self._redis.get(self.keys.urgent(number)))

    def queue_urgent_words(self, pipe: Any, number: str) -> int:
        """Queue :meth:`urgent_words_for`'s read on ``pipe`` (the caller's facts in one
        pipeline); read the reply with :func:`urgent_words_from`."""
        pipe.get(self.keys.urgent(number))
        return 1


def urgent_words_from(value: Any) -> tuple[str, ...]:
    """The words in an urgency memory's value (``None``: nothing remembered)."""
    if not value:
        return ()
    return tuple(json.loads(_s(value)).get("words", ()))


async def ensure_group_async(redis: Redis, stream: str) -> None:
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except Exception as exc:  # redis.ResponseError, "BUSYGROUP": it exists already
        if "BUSYGROUP" not in str(exc):
            raise


def ivr_fields(values: Mapping[str, object | None]) -> dict[str, str]:
    """IVR data as stored strings (None dropped, booleans as ``0``/``1``)."""
    out: dict[str, str] = {}
    for k, v in values.items():
        if v is None:
            continue
        out[k] = str(int(v)) if isinstance(v, bool) else str(v)
    return out


def urgent_words_json(words: Sequence[str]) -> str:
    return json.dumps(list(words), ensure_ascii=False)
