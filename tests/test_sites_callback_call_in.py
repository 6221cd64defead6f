"""Two sites' daemons: a customer calling one site while the other dials their callback wins.

North raised the customer's callback flag (they called north before), so
north dials it: its agent's phone rings, then the callback context rings the
customer. Meanwhile the customer calls south. Before, north knew only the
calls of its own Asterisk: it rang a customer who was in south's IVR (a second
call to a busy line, or a call waiting tone in the middle of their complaint).
Now south marks the number while the customer's call lasts, north's dialler
sees the mark within a second, hangs its agent's leg up and ends the attempt
``customer_called_in`` (not counted); the mark goes when the call at south
ends. The whole daemon of each site (``tests.e2e_harness``) with its own test
PBX, on one real Redis and on a real 3-master Redis Cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from routing.callbacks import AttemptOutcome, abandon_reason, normalize_number
from shenava_base.aio import as_deferred
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E
from tests.test_sites_cluster import site_config, until

CUSTOMER = "09120000077"


@pytest.fixture(params=["cluster", "one-redis"])
def shared_redis(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("cluster_client" if request.param == "cluster" else "redis_client")


@pytest_twisted.ensureDeferred
async def test_a_customer_calling_south_while_north_dials_their_callback_wins(
    shared_redis: Any, tmp_path: Path,
) -> None:
    north = E2E.build(tmp_path / "north", config=site_config("north"), redis=shared_redis)
    south = E2E.build(tmp_path / "south", config=site_config("south"), redis=shared_redis)
    try:
        for h in (north, south):  # each knows the other is there (the register of sites)
            await as_deferred(h.app.centre.refresh())
        await as_deferred(north.app.centre.refresh())
        callbacks = north.app.complaints.callbacks
        number = normalize_number(CUSTOMER)
        reason = abandon_reason("earlier-call", north.now, 40.0, callbacks.policy)
        assert reason is not None
        flag = await as_deferred(callbacks.raise_reason(CUSTOMER, reason, north.now))
        assert flag.site == "north"

        # north's agent answers after 5 s; the customer's phone would ring for 60 s
        north.phone("PJSIP/101", PhoneScript(answer_after_s=5.0, talk_s=30.0))
        north.phone(f"PJSIP/{CUSTOMER}", PhoneScript(answer_after_s=60.0, talk_s=30.0))
        north.log_in("a1")
        north.app.complaints.dialer.poke()

        async def dialling() -> Any:
            return [m for m in north.actions("Originate") if m.get("Context") == "shenava-callback"]

        await until(north, dialling, step_s=0.2)
        call = south.call(CallerScript(number=CUSTOMER, language="fa", patience_s=600.0))

        async def in_south_ivr() -> bool:
            return bool(south.agi_commands(call))

        await until(south, in_south_ivr, step_s=0.2)

        async def gave_way() -> Any:
            current = await callbacks.get(flag.flag_id)
            return current if current.attempts and current.attempts[0].outcome else None

        ended = await until(north, gave_way, step_s=0.2)
        assert [a.outcome for a in ended.attempts] == [AttemptOutcome.CUSTOMER_CALLED_IN]
        assert ended.is_open and ended.round_attempts == ()
        assert [m.get("Exten") for m in await as_deferred(dialling())] == [CUSTOMER]
        assert north.actions("Hangup")  # north's agent leg
        assert await as_deferred(callbacks.calling([number])) == {number}  # south's mark

        call.hang_up()  # their call at south ends: the mark goes

        async def unmarked() -> bool:
            return not await callbacks.calling([number])

        await until(south, unmarked, step_s=0.2)
    finally:
        north.stop()
        south.stop()
