"""The complaint register through the IVR, end to end on the test PBX with a real Redis.

A caller makes a new complaint: it is opened in the register with what they
entered, and its reference number is read to them digit by digit. Calling again,
the caller enters that reference in the status menu and hears where it stands.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest_twisted
from redis.asyncio import Redis

from complaints.reference import is_valid_reference
from shenava.demo import luhn_complete
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript
from tests.e2e_harness import E2E

NUMBER = "09121234567"
ACCOUNT = luhn_complete("123456789")


@pytest_twisted.ensureDeferred
async def test_a_new_complaint_gets_a_reference_the_caller_can_check_later(
    redis_client: Redis, tmp_path: Path
) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        register = h.app.complaints.register
        # 1 Persian, 1 new complaint, 3 billing, 2 not urgent, 3 no extra care,
        # the account and 1 to confirm it; then hold (nobody is logged in).
        first = h.call(CallerScript(number=NUMBER, answers=("1", "1", "3", "2", "3", ACCOUNT + "#", "1"),
                                    hangup_after_s=90.0))
        await h.run_until_async(lambda: _said_reference(h, first) is not None, limit_s=120.0)
        reference = _said_reference(h, first)
        assert reference is not None and is_valid_reference(reference)
        # "your reference is" and its digits in one round trip, the digit files
        # SAY DIGITS would play, in the caller's language (set on the channel)
        digits = "&".join(f"digits/{d}" for d in reference)
        told = [c for c in h.agi_commands(first) if "your-reference" in c or c.startswith("SAY DIGITS")]
        assert told[-1:] == [f"EXEC Playback shenava/your-reference&{digits}"]
        assert not [c for c in told if c.startswith("SAY DIGITS") and reference in c]
        status = await as_deferred(register.ivr_status(reference))
        assert status.found and status.valid
        found = await as_deferred(register.caller_context(NUMBER, h.now))
        assert reference in found.open_references

        await h.run_until_async(lambda: not h.alive(first), limit_s=120.0)
        # Later the caller checks on it: 2 = status, the reference, 1 to confirm.
        second = h.call(CallerScript(number=NUMBER, answers=("1", "2", reference + "#", "1", "")))
        await h.run_until_async(
            lambda: any("status-" in c for c in h.agi_commands(second)), limit_s=120.0
        )
        played = [c for c in h.agi_commands(second) if "status-" in c]
        assert any("/status-received" in c for c in played)  # opened, not yet looked at
    finally:
        h.stop()


def _said_reference(h: E2E, call: object) -> str | None:
    """The digits read right after the "your reference is" prompt, if they were."""
    commands = h.agi_commands(call)  # type: ignore[arg-type]
    for i, command in enumerate(commands):
        played = re.match(r"EXEC Playback \S*/your-reference((?:&digits/\d)+)$", command)
        if played:  # the prompt and the digits in one Playback
            return played.group(1).replace("&digits/", "")
        if command.startswith("STREAM FILE") and "/your-reference" in command:
            for later in commands[i + 1:]:
                match = re.match(r"SAY DIGITS (\d+) ", later)
                if match:
                    return match.group(1)
    return None
