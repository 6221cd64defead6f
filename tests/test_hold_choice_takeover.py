"""A waiting caller's hold choice (1: callback, 2: voicemail) across a kill -9, in process.

The waiting line lets the caller go when they press 1 or 2; the choice is then
served (a prompt, the recording, "message saved" or "callback booked") and
handed on. It is kept in the call state until that is over (the record's
``hold_choice``), and handed on before the caller is told it is booked or
saved. A caller still on the line when a new daemon takes over carries on
where they were; before, the call state held nothing of them and they were
taken for a new caller (the main menu), their choice lost. Virtual time, a
real Redis (``tests.e2e_harness``); the process test is
``tests/test_hold_choice_process.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis
from twisted.internet.defer import ensureDeferred

from shenava.takeover import CallStateExtension
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E
from tests.test_takeover_voicemail_saved import _durable, _voicemails_of

NUMBER = "0935444002"


async def _open_reasons(client: Any) -> list[str]:
    flag_id = await as_deferred(client.hget("shenava:{callbacks}:open", NUMBER))
    if flag_id is None:
        return []
    flag_id = flag_id.decode() if isinstance(flag_id, bytes) else flag_id
    flag = json.loads(await as_deferred(client.get(f"shenava:{{callbacks}}:flag:{flag_id}")))
    return [r["kind"] for r in flag["reasons"]]


async def _kill_at(h: E2E, call: Any, prompt: str) -> dict[str, Any]:
    """Kill the daemon when ``prompt`` starts (the call state flushed first); its record."""
    await h.run_until_async(lambda: prompt in h.prompts(call), limit_s=200)
    extension = h.app.takeover
    assert isinstance(extension, CallStateExtension)
    await extension.recorder.flushed()
    record = (await as_deferred(extension.store.load()))[call.uniqueid]
    h.kill()
    return record


@pytest_twisted.ensureDeferred
async def test_a_caller_killed_during_leave_message_records_after_the_take_over(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, config=_durable(tmp_path), redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "3", "2"), patience_s=900.0))
    client: Any = redis_client
    record = await _kill_at(h, call, "leave-message")
    assert record["hold_choice"]["choice"] == "voicemail"
    assert record["hold_choice"]["step"] == "chosen"

    h.start_again(redis=redis_client)
    await h.run_until_async(lambda: not h.alive(call), limit_s=200)
    assert h.prompts(call).count("message-saved") == 1
    assert "main-menu" not in h.prompts(call)[h.prompts(call).index("leave-message"):]
    state = {"kept": False}

    def kept() -> bool:
        d = ensureDeferred(_voicemails_of(client, call.uniqueid))
        d.addCallback(lambda v: state.__setitem__("kept", bool(v)))
        return state["kept"]

    await h.run_until_async(kept, limit_s=60)
    assert len(await _voicemails_of(client, call.uniqueid)) == 1
    assert (await _open_reasons(client)).count("voicemail") == 1


@pytest_twisted.ensureDeferred
async def test_a_callback_choice_is_kept_before_callback_booked_and_survives_a_kill(
    redis_client: Redis, tmp_path: Path
) -> None:
    """Killed as "callback booked" starts; the caller hangs up while no daemon runs:
    the flag's reason is there (journalled before the prompt), once."""
    h = E2E.build(tmp_path, config=_durable(tmp_path), redis=redis_client, killable=True)
    call = h.call(CallerScript(number=NUMBER, language="fa", answers=("1", "3", "1"), patience_s=900.0))
    client: Any = redis_client
    record = await _kill_at(h, call, "hold-callback-booked")
    assert record["hold_choice"] == {**record["hold_choice"], "choice": "callback", "step": "kept"}
    call.hang_up()
    h.pump()

    h.start_again(redis=redis_client)
    state = {"reasons": []}

    def raised() -> bool:
        d = ensureDeferred(_open_reasons(client))
        d.addCallback(lambda v: state.__setitem__("reasons", v))
        return "ivr_request" in state["reasons"]

    await h.run_until_async(raised, limit_s=60)
    until = h.now + 30.0
    await h.run_until_async(lambda: h.now >= until, limit_s=60)
    assert (await _open_reasons(client)).count("ivr_request") == 1
