"""A waiting caller's voicemail choice survives a kill -9 of ``shenava run``.

Real processes (the rig of ``tests/test_chaos_process.py``): the caller waits
(no agent), presses 2 at the hold options, and records; the daemon is killed
with SIGKILL while they speak; they hang up while no daemon runs; a new daemon
starts on the same state folder. The waiting line had let the caller go when
they pressed 2, and the choice was journalled only after "message saved", so
the call state held nothing of them and the new daemon knew nothing: the
voicemail was lost (a WAV with no record, no flag). The choice is now kept in
the call state until it is over, and the take-over hands it on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks._takeover_rig import Rig, run_async
from shenava.redis_server import start_redis_server
from tests.test_chaos_process import _rig, _wait_ended

NUMBER = "09130000077"
VOICEMAIL_AT_HOLD = {
    "at": 1.0, "number": NUMBER, "patience_s": 600, "answer_delay_s": 0.5,
    "menu_answers": {"choose-language": "1", "main-menu": "3", "hold-options": "2"},
    "audio": "sample", "after_speaking": "hangup",
}
LIMIT_S = 90.0


async def _kept(rig: Rig) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """The voicemails stored, the caller's flag reasons, the call state left."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(rig.redis_url, decode_responses=True)
    try:
        voicemails = []
        for vm_id in await client.zrange(f"{rig.prefix}:{{vm}}:index", 0, -1):
            voicemails.append(await client.hgetall(f"{rig.prefix}:{{vm}}:vm:{vm_id}"))
        reasons: list[str] = []
        flag_id = await client.hget(f"{rig.prefix}:{{callbacks}}:open", NUMBER)
        if flag_id is not None:
            flag = json.loads(await client.get(f"{rig.prefix}:{{callbacks}}:flag:{flag_id}"))
            reasons = [r["kind"] for r in flag["reasons"]]
        calls = await client.hgetall(f"{rig.prefix}:{{calls}}:live")
        return voicemails, reasons, calls
    finally:
        await client.aclose()


@pytest.mark.slow
def test_a_hold_voicemail_being_recorded_at_a_kill_minus_9_is_kept(tmp_path: Path) -> None:
    redis = start_redis_server(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    rig = _rig(tmp_path, redis, {"callers": [VOICEMAIL_AT_HOLD]})
    try:
        rig.start_pbx()
        first = rig.start_daemon("first")
        rig.wait_for(first, "left the line for a voicemail", limit_s=LIMIT_S)
        # "leave-message" is 1 s, then the beep; the caller speaks 0.5 s later for 6.8 s
        time.sleep(3.0)
        assert not rig.callers(), "the caller hung up before the kill"
        rig.kill(first)
        (caller,) = _wait_ended(rig, 1)  # spoke, hung up while no daemon ran
        assert not caller["saved"]
        assert len(list((tmp_path / "recordings" / "voicemail").glob("*.wav"))) == 1  # their message

        second = rig.start_daemon("second")
        rig.wait_for(second, "take-over round 1")
        deadline = time.monotonic() + LIMIT_S
        voicemails, reasons, calls = run_async(lambda: _kept(rig))
        while time.monotonic() < deadline and (not voicemails or "voicemail" not in reasons):
            time.sleep(0.2)
            voicemails, reasons, calls = run_async(lambda: _kept(rig))
        assert [v["call_id"] for v in voicemails] == [caller["uniqueid"]]
        assert json.loads(voicemails[0]["ivr"])["source"] == "hold"
        assert reasons.count("voicemail") == 1
        assert calls == {}
    finally:
        rig.close()
        redis.stop()
