"""benchmarks/floor.py at a tiny size: its JSON, and every row processing the same calls.

No timing is checked: the figures are the benchmark's to report (docs/scaling.md,
"The floor"). What is checked is that each stack read every recorded AMI byte,
made every recorded send, and (the rows with Redis) every recorded round trip
with its commands, so the rows' CPU figures are of the same work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.floor import BANNER, DEFAULT_TRACE, ROWS, load_trace, trace_counts
from benchmarks.floor_record import resp_commands, summary

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 1.0


def test_resp_commands_splits_a_pipelined_request_into_its_commands() -> None:
    packed = b"*1\r\n$5\r\nMULTI\r\n*3\r\n$4\r\nHSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n*1\r\n$4\r\nEXEC\r\n"
    assert resp_commands(packed) == [[b"MULTI"], [b"HSET", b"k", b"a\r\nb"], [b"EXEC"]]


def test_the_recorded_trace_is_whole_calls_at_50_per_second() -> None:
    trace = load_trace(DEFAULT_TRACE)
    assert trace["rate"] == 50.0
    whole = trace_counts(trace, 1)
    # every call placed entered the IVR inside the recording: whole calls, not a slice
    starts = sum(d.count(b"Event: AsyncAGIStart\r\n") for _, d in trace["reads"])
    assert starts == trace["calls"]
    assert whole["redis_round_trips_per_call"] > 1 and whole["ami_sends_per_call"] > 1
    # every EVALSHA's script is in the trace, so a fresh redis-server can run it
    shas = {args[1].decode() for _, kind, rts in trace["actions"] if kind == "redis"
            for args in rts if args[0].upper() == b"EVALSHA"}
    assert shas and shas <= set(trace["scripts"])


def test_summary_counts_per_call() -> None:
    trace = {"calls": 2, "calls_by_agi_start": 2, "window_s": 1.0, "ami_writes": 4,
             "reads": [[0.0, "Event: A\r\n\r\n"], [0.5, "Response: Success\r\n\r\n"]],
             "actions": [[0, "ami", "Action: Ping\r\n\r\n"],
                         [14, "redis", [["MULTI"], ["HSET", "k", "f", "v"], ["EXEC"]]]]}
    out = summary(trace)
    assert out["ami_reads_per_call"] == 1.0
    assert out["ami_sends_per_call"] == 0.5
    assert out["redis_round_trips_per_call"] == 0.5
    assert out["redis_commands_per_call"] == 1.5


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the benchmark pins to one of two cores")
def test_floor_benchmark_runs_every_row_over_the_same_calls() -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    done = subprocess.run(
        [sys.executable, "benchmarks/floor.py", "--seconds", str(SECONDS), "--system", "off",
         "--cpu", str(cpu)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["bench"] == "floor"
    assert list(out["rows"]) == list(ROWS)
    trace = load_trace(DEFAULT_TRACE, SECONDS)
    expected = trace_counts(trace, 1)
    assert out["trace"]["calls"] == expected["calls"] > 0
    assert "daemon" not in out  # --system off
    rows = out["rows"]
    for name, row in rows.items():
        assert row["calls"] == expected["calls"], name
        assert row["bytes_in"] == len(BANNER) + trace["bytes"], name
        assert row["per_call"]["sends"] == expected["ami_sends_per_call"], name
        assert isinstance(row["cpu_ms_per_call"], float) and row["cpu_ms_per_call"] > 0, name
        assert row["per_call"]["reads"] > 0 and row["per_call"]["loop_turns"] > 0, name
    assert rows["a_bare_asyncio"]["per_call"]["messages"] == 0
    for name in ("b_codec", "c_redis", "d_twisted"):
        assert rows[name]["per_call"]["messages"] == expected["ami_messages_in_per_call"], name
    for name in ("a_bare_asyncio", "b_codec"):
        assert rows[name]["per_call"]["redis_round_trips"] == 0, name
    for name in ("c_redis", "d_twisted"):
        assert rows[name]["per_call"]["redis_round_trips"] == expected["redis_round_trips_per_call"], name
        assert rows[name]["per_call"]["redis_commands"] == expected["redis_commands_per_call"], name
        # the only errors: redis-py's connection hand-shake (CLIENT SETINFO...) recorded
        # when the daemon opened a connection, refused by an older redis-server as then
        assert all(k.startswith("CLIENT:") for k in rows[name]["redis_error_kinds"]), name
    assert rows["a_bare_asyncio"]["layer_ms_per_call"] is None
    assert all(isinstance(rows[n]["layer_ms_per_call"], float) for n in ROWS[1:])
