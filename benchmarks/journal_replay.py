"""The durable journal: records through it with Redis up, and the replay after an outage.

    .venv/bin/python benchmarks/journal_replay.py [--records 2000]

A real ``redis-server`` (AOF on, ``appendfsync always``) on a free loopback
port and a journal in a temporary folder (real fsyncs, in a worker thread, on
whatever disk ``$TMPDIR`` is). Each record is a callback flag's reason raised
as the daemon raises them (``CallbackSources`` -> journal -> ``CallbackStore``,
a ``WATCH`` transaction).

1. ``live``: ``--records`` raised at once with Redis up: wall time until every
   one is in Redis (submit, group-committed fsync, apply in order).
2. ``replay``: the same number raised while Redis is unreachable (they wait in
   the journal file), the daemon stopped, then a new journal on the same folder
   replays them into Redis: records per second of the replay.

The last line is one JSON object; it checks that Redis holds exactly the
records raised (``lost`` and ``doubled`` must be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shenava_base.aio import install_asyncio_reactor  # noqa: E402

reactor: Any = install_asyncio_reactor()

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402

from complaints.callback_sources import AnswerRate, CallbackSources  # noqa: E402
from routing.callback_store import CallbackStore  # noqa: E402
from routing.callbacks import DialPolicy, abandon_reason  # noqa: E402
from shenava.config import RedisConfig  # noqa: E402
from shenava.journal import Journal  # noqa: E402
from shenava.redis_client import make_redis_client  # noqa: E402
from shenava.redis_server import free_port, start_redis_server  # noqa: E402
from shenava_base.aio import as_deferred  # noqa: E402

POLICY = DialPolicy(lease_ms=60_000)
T0 = 1_740_000_000.0


def sources(journal: Journal, client: Any) -> CallbackSources:
    return CallbackSources(CallbackStore(client, "shenava", POLICY), reactor, waiting_calls=lambda: 0,
                           rate=AnswerRate(), journal=journal)


def raise_all(src: CallbackSources, first: int, count: int) -> list[Deferred[Any]]:
    out = []
    for i in range(first, first + count):
        reason = abandon_reason(f"call-{i}", T0, 60, POLICY)
        assert reason is not None
        out.append(src.raise_reason(f"0912{i:07d}", reason))
    return out


async def until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await deferLater(reactor, 0.01, lambda: None)


async def run(records: int, folder: Path) -> dict[str, Any]:
    server = start_redis_server(folder / "redis", extra_args=("--appendfsync", "always"))
    config = RedisConfig(url=server.url, max_connections=16, socket_timeout_s=2.0, connect_timeout_s=0.5)
    client = make_redis_client(config, decode_responses=True)
    try:
        journal = Journal(reactor, folder / "state")
        src = sources(journal, client)
        journal.load()
        journal.start()
        started = time.perf_counter()
        await DeferredList(raise_all(src, 0, records))
        await until(lambda: journal.depth == 0, 300)
        live_s = time.perf_counter() - started
        await journal.stop()

        away = make_redis_client(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0",
                                             connect_timeout_s=0.2), decode_responses=True)
        offline = Journal(reactor, folder / "state2", answer_within_s=0.0)
        src = sources(offline, away)
        offline.load()
        offline.start()
        await DeferredList(raise_all(src, records, records))
        await offline.stop()
        kept = (folder / "state2" / "journal.jsonl").stat().st_size
        await as_deferred(away.aclose())

        replay = Journal(reactor, folder / "state2")
        sources(replay, client)
        started = time.perf_counter()
        replay.load()
        replay.start()
        await until(lambda: replay.depth == 0, 600)
        replay_s = time.perf_counter() - started
        await replay.stop()
        stored = await as_deferred(client.hlen("shenava:{callbacks}:open"))
        reasons = 0
        for flag_id in await as_deferred(client.hvals("shenava:{callbacks}:open")):
            flag = json.loads(await as_deferred(client.get(f"shenava:{{callbacks}}:flag:{flag_id}")))
            reasons += len(flag["reasons"])
        return {
            "benchmark": "journal_replay",
            "records": records,
            "live_s": round(live_s, 3),
            "live_records_per_s": round(records / live_s, 1),
            "journal_bytes_per_record": round(kept / records, 1),
            "replay_s": round(replay_s, 3),
            "replay_records_per_s": round(records / replay_s, 1),
            "lost": 2 * records - stored,
            "doubled": reasons - stored,
        }
    finally:
        await as_deferred(client.aclose())
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}

    def go() -> None:
        d = ensureDeferred(run(args.records, Path(tempfile.mkdtemp(prefix="shenava-journal-"))))
        d.addCallback(result.update)
        d.addErrback(lambda f: result.update(error=f.getErrorMessage()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    print(json.dumps(result))
    return 0 if "error" not in result and result["lost"] == 0 and result["doubled"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
