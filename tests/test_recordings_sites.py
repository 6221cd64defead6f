"""The transcription queue per site, on a real Redis: a voicemail file is on its own site's
host, so a site's workers take only its jobs; jobs that named sites queued on the shared
stream before are moved to their site's stream when its workers start (those whose file
is in the worker's folder, or whose record names the site); the default site's workers,
while other sites share the Redis, retry a missing file instead of parking it at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest_twisted
import redis
from redis.asyncio import Redis

from recordings.layout import GROUP, Keys
from recordings.queue import JobQueue
from recordings.store import RecordingFolder, VoicemailMeta, VoicemailStore
from recordings.worker import Worker, WorkerSettings, prepare_site
from shenava_base.aio import as_deferred
from shenava_base.sites import register_site
from tests.test_recordings_queue import NOW, SAMPLE, fake_transcribe, sync_client, tokens

__all__ = ["sync_client"]

_TOKENS = tokens()
"""Ids unique across the sites' folders (random in production)."""


def folder(path: Path) -> RecordingFolder:
    return RecordingFolder(path, token=lambda: next(_TOKENS))


async def leave(client: Redis, rf: RecordingFolder, site: str, lang: str = "ko") -> str:
    """A voicemail left at ``site``: the file in its folder, registered by its daemon's store."""
    store = VoicemailStore(client, rf, site=site)
    alloc = store.allocate(NOW)
    shutil.copy(SAMPLE, alloc.path)
    meta = VoicemailMeta("09121234567", lang, NOW, f"c-{alloc.vm_id}", "", {})
    assert await as_deferred(store.register(alloc.vm_id, meta))
    return alloc.vm_id


def worker(client: redis.Redis, rf: RecordingFolder, site: str, consumer: str, **kw: object) -> Worker:
    settings = WorkerSettings(redis_url="", recordings_dir=str(rf.dir), models={"ko": "/m"},
                              block_s=0.05, site=site, **kw)  # type: ignore[arg-type]
    queue = JobQueue(client, consumer, site=site, max_attempts=settings.max_attempts,
                     claim_idle_s=settings.claim_idle_s)
    queue.ensure_group()
    return Worker(queue, rf, {"ko": "ko"}, fake_transcribe, prepare_site(queue, rf, settings),
                  now=lambda: NOW + 60)


def drain(w: Worker) -> list[str]:
    done = []
    while (what := w.run_once()) is not None:
        done.append(what)
    return done


def test_keys_per_site() -> None:
    assert Keys().jobs == "shenava:{vm}:jobs" and Keys().awaiting("fa") == "shenava:{vm}:awaiting:fa"
    north = Keys("shenava", "north")
    assert north.jobs == "shenava:{vm}:jobs@north" and north.legacy_jobs == "shenava:{vm}:jobs"
    assert north.awaiting("fa") == "shenava:{vm}:awaiting@north:fa"
    assert north.record("vm-1") == Keys().record("vm-1")  # one register of voicemails for the centre


@pytest_twisted.ensureDeferred
async def test_each_sites_workers_take_only_their_sites_jobs(
    sync_client: redis.Redis, redis_client: Redis, tmp_path: Path
) -> None:
    folders = {site: folder(tmp_path / (site or "default")) for site in ("", "north", "south")}
    for rf in folders.values():
        rf.dir.mkdir(parents=True)
    left = {site: [await leave(redis_client, rf, site) for _ in range(2)] for site, rf in folders.items()}
    for site in folders:
        await as_deferred(register_site(redis_client, "shenava", site, name=site, timezone="UTC"))
    record = await as_deferred(redis_client.hgetall(Keys().record(left["north"][0])))
    assert record["site"] == "north" and "site" not in await as_deferred(
        redis_client.hgetall(Keys().record(left[""][0])))
    # every site's workers on one Redis; each sees only its own folder
    workers = {site: worker(sync_client, rf, site, f"w-{site or 'default'}") for site, rf in folders.items()}
    assert all(w.settings.other_sites for w in workers.values())
    for site, w in workers.items():
        assert drain(w) == ["transcribed", "transcribed"], site  # no file of another site missing
        for vm_id in left[site]:
            vm = w.queue.get(vm_id)
            assert vm is not None and vm.status == "transcribed"
    for site in folders:
        assert sync_client.xlen(Keys("shenava", site).jobs) == 0


@pytest_twisted.ensureDeferred
async def test_jobs_queued_on_the_shared_stream_before_move_to_their_sites_stream(
    sync_client: redis.Redis, redis_client: Redis, tmp_path: Path
) -> None:
    north_dir, south_dir = folder(tmp_path / "north"), folder(tmp_path / "south")
    north_dir.dir.mkdir()
    south_dir.dir.mkdir()
    # What earlier versions did: every site's daemon queued on the shared stream, records
    # without a site (the default site's store is exactly that).
    north_old = [await leave(redis_client, north_dir, "") for _ in range(2)]
    south_old = await leave(redis_client, south_dir, "")
    north_waiting = await leave(redis_client, north_dir, "", lang="fa")  # no model for it yet
    shared = Keys()
    assert sync_client.xlen(shared.jobs) == 4
    # a default-site worker of that time had read one of north's jobs and died holding it
    old = JobQueue(sync_client, "old-worker")
    old.ensure_group()
    held = sync_client.xreadgroup(GROUP, "old-worker", {shared.jobs: ">"}, count=1)
    assert held[0][1][0][1]["vm"] == north_old[0]
    # and north's Persian voicemail waited for a model in the shared awaiting set
    sync_client.sadd(shared.awaiting("fa"), north_waiting)
    sync_client.xdel(shared.jobs, *[e for e, f in sync_client.xrange(shared.jobs)
                                    if f["vm"] == north_waiting])
    sync_client.hset(shared.record(north_waiting), "waiting_for_model", "fa")
    # north's workers start: they take north's jobs (their files are in north's folder)
    north = worker(sync_client, north_dir, "north", "w-north")
    assert sorted(e[1]["vm"] for e in sync_client.xrange(Keys("shenava", "north").jobs)) == sorted(north_old)
    assert [f["vm"] for _e, f in sync_client.xrange(shared.jobs)] == [south_old]
    assert sync_client.xpending(shared.jobs, GROUP)["pending"] == 0  # the held one too
    assert sync_client.smembers(Keys("shenava", "north").awaiting("fa")) == {north_waiting}
    assert not sync_client.exists(shared.awaiting("fa"))
    assert sync_client.hget(shared.record(north_old[0]), "site") == "north"
    assert drain(north) == ["transcribed", "transcribed"]
    # starting again moves nothing more; south's job waits for south's (default) workers
    assert north.queue.adopt_legacy(lambda vm_id: north_dir.path(vm_id).exists()) == 0
    south = worker(sync_client, south_dir, "", "w-south")
    assert drain(south) == ["transcribed"]


@pytest_twisted.ensureDeferred
async def test_the_default_sites_worker_retries_a_missing_file_while_other_sites_share_the_redis(
    sync_client: redis.Redis, redis_client: Redis, tmp_path: Path
) -> None:
    theirs, mine = folder(tmp_path / "north"), folder(tmp_path / "default")
    theirs.dir.mkdir()
    mine.dir.mkdir()
    vm_id = await leave(redis_client, theirs, "")  # queued by north's daemon before sites' queues
    alone = worker(sync_client, mine, "", "w-alone", max_attempts=3)
    assert not alone.settings.other_sites
    await as_deferred(register_site(redis_client, "shenava", "north", name="North", timezone="UTC"))
    default = worker(sync_client, mine, "", "w-default", max_attempts=3)
    assert default.settings.other_sites
    assert drain(default) == ["retry"]  # not parked: north's workers may still move it
    vm = default.queue.get(vm_id)
    assert vm is not None and vm.status == "pending" and "file_missing" in (vm.last_error or "")
    # north's worker starts and takes it over from the shared stream, then transcribes it
    north = worker(sync_client, theirs, "north", "w-north")
    assert drain(north) == ["transcribed"]
    assert default.queue.claim_idle() is None
