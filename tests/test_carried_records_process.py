"""A call state never reaches Redis without the journal records its change made.

Real processes (the rig of ``tests/test_chaos_process.py``). A change of a call
that makes a journal record (a waiting caller's hold choice makes its SL
outcome, an answer makes its own) is marked in the call state at once and
written to Redis at the end of the turn; the record's append and fsync run in
the journal's thread and can land later. Here the daemon's journal holds every
SL outcome back (``tests/daemon_plugins.py late-outcomes``: a slow disk or a
starved thread), the caller presses 1 at the hold options, and the daemon is
killed -9 once Redis says the caller is serving that choice. Before, the next
daemon resumed the choice and nobody counted the outcome: the day had one call
fewer offered (and no callback outcome). Now the stored state carries the
records its call had not yet on disk, and the take-over submits them again
(each stored once, by its id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _takeover_rig
from benchmarks._takeover_rig import Rig, run_async
from shenava.redis_server import start_redis_server
from tests import daemon_plugins
from tests.test_chaos_process import _outcomes, _poll, _rig, _wait_ended

NUMBER = "09130000078"
CALLBACK_AT_HOLD = {
    "at": 1.0, "number": NUMBER, "patience_s": 600, "answer_delay_s": 0.5,
    "menu_answers": {"choose-language": "1", "main-menu": "3", "hold-options": "1"},
}
LIMIT_S = 90.0


async def _records(rig: Rig) -> list[dict[str, Any]]:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        return [json.loads(r) for r in await client.hvals(f"{rig.prefix}:{{calls}}:live")]
    finally:
        await client.aclose()


@pytest.mark.slow
def test_a_hold_choice_outcome_not_on_disk_at_a_kill_minus_9_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    rig = _rig(tmp_path, redis, {"callers": [CALLBACK_AT_HOLD]})
    try:
        rig.start_pbx()
        with monkeypatch.context() as patch:
            patch.setattr(_takeover_rig, "shenava_command",
                          lambda: daemon_plugins.command(["late-outcomes=600"]))
            first = rig.start_daemon("first")
        rig.wait_for(first, "left the line for a callback", limit_s=LIMIT_S)
        records = _poll(lambda: run_async(lambda: _records(rig)),
                        lambda found: any("hold_choice" in r for r in found), limit_s=LIMIT_S)
        (record,) = records
        assert "hold_choice" in record, records  # the window: Redis says so ...
        journal = tmp_path / "state" / "journal.jsonl"
        assert "stats.outcome" not in (journal.read_text() if journal.exists() else "")  # ... not the disk
        rig.kill(first)

        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1", limit_s=LIMIT_S)
        (caller,) = _wait_ended(rig, 1)
        seen, reasons, calls = _poll(
            lambda: run_async(lambda: _outcomes(rig)),
            lambda found: bool(found[0]) and not found[2], limit_s=LIMIT_S,
        )
        lost = 1 - seen.get(caller["uniqueid"], 0)
        assert lost == 0, f"{lost} SL outcome lost; {second.log_text()[-3000:]}"
        assert seen == {caller["uniqueid"]: 1}  # counted once
        assert reasons == {NUMBER: ["ivr_request"]}  # one flag, one reason (a hold callback is one)
        assert calls == {}
        assert "submitted again" in second.log_text()
        assert "Traceback" not in second.log_text()
    finally:
        rig.close()
        redis.stop()

