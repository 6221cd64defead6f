"""The caller's facts at arrival: every package's reads in one pipeline, then one ``MGET``.

Against the daemon as ``shenava run`` wires it (complaints, callback flags and
recordings on a real Redis, ``tests.e2e_harness``): a caller with a complaint,
an abuse report, an open callback flag and an urgent voicemail. Before, the
facts were five round trips in a row (the complaints' index, their records,
the reports' index, their records, the flag; then the urgent words) and six
commands; now the indexes (one ``ZUNION``: they share a slot), the flag and
the urgent words are one pipeline and the complaints and reports one ``MGET``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from redis.asyncio import Redis

from complaints.complaint import Channel
from recordings.intake import caller_key
from routing.callbacks import DialPolicy, abandon_reason
from shenava_base.aio import as_deferred
from tests.e2e_harness import E2E

NUMBER = "09121234567"


async def _commands(client: Redis) -> dict[str, int]:
    raw = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


class _Pipelines:
    """Counts the round trips: pipelines executed and single commands, on the app's client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.trips = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name == "pipeline":
            def pipeline(*args: Any, **kwargs: Any) -> Any:
                pipe = attr(*args, **kwargs)
                execute = pipe.execute

                async def counted(*a: Any, **kw: Any) -> Any:
                    self.trips += 1
                    return await execute(*a, **kw)

                pipe.execute = counted
                return pipe
            return pipeline
        if callable(attr) and name in ("get", "mget", "zrange", "hexists", "hget"):
            async def single(*args: Any, **kwargs: Any) -> Any:
                self.trips += 1
                return await attr(*args, **kwargs)
            return single
        return attr


@pytest_twisted.ensureDeferred
async def test_a_callers_facts_are_one_pipeline_and_one_mget(redis_client: Redis, tmp_path: Path) -> None:
    h = E2E.build(tmp_path, redis=redis_client)
    try:
        app = h.app
        register, callbacks = app.complaints.register, app.complaints.callbacks
        await as_deferred(register.open_complaint(h.now, category="billing", channel=Channel.IVR, number=NUMBER))
        await as_deferred(register.report_abuse(h.now, agent_id="a1", number=NUMBER, category="threat"))
        reason = abandon_reason("call-0", h.now, 60.0, DialPolicy())
        assert reason is not None
        await as_deferred(callbacks.raise_reason(NUMBER, reason, h.now))
        urgent = app.recordings.store.keys.urgent(caller_key(NUMBER))
        await as_deferred(redis_client.set(urgent, json.dumps({"words": ["fire"]})))

        counting = _Pipelines(app.redis)
        for store in (register.store, callbacks, app.recordings.store):
            for name in ("_client", "_redis"):
                if getattr(store, name, None) is app.redis:
                    setattr(store, name, counting)
        app.redis = counting
        before = await as_deferred(_commands(redis_client))
        facts = await app.callflow.caller_facts(NUMBER)
        after = await as_deferred(_commands(redis_client))
        other = await app.callflow.caller_facts("09350000000")
    finally:
        h.stop()

    assert facts == {"open_complaint": True, "recent_call": False, "callback_flag": True,
                     "abusive_caller": True, "urgent_words": ("fire",)}
    assert other == {"open_complaint": False, "recent_call": False, "callback_flag": False,
                     "abusive_caller": False}
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    spent["info"] -= 1
    assert {k: n for k, n in spent.items() if n} == {"zunion": 1, "hexists": 1, "get": 1, "mget": 1}
    assert counting.trips == 2 + 1  # ours, and the other caller's (nothing to MGET)
