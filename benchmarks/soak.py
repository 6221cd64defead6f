"""Memory under a steady stream of calls: does the daemon's RSS stay flat?

    .venv/bin/python benchmarks/soak.py [--rate 5] [--duration-s 60] [--warmup-s 20]
    .venv/bin/python benchmarks/soak.py --long          # 30 minutes

A child process (``multiprocessing``, spawn) runs the test PBX on a free
loopback port and places ``--rate`` scripted callers a second for
``--duration-s`` seconds. This process runs the daemon as ``shenava run``
builds it (:class:`shenava.app.Shenava` on the asyncio reactor, with a real
``redis-server`` started for the run, so the statistics, complaints and
recordings wiring is in the call path). Callers walk the default menus (a
seeded mix: new complaints, status look-ups, voicemails, callbacks, straight
to an agent, hang-ups in the IVR); four agents answer after a second and talk
a few seconds; waiting callers give up after 10-20 s, so the waiting line
stays bounded whatever the rate.

Two rounds, each placing calls and then draining (every call ended, or
``--drain-s``) plus 10 s for wrap-up and the last writes: a warm-up of
``--warmup-s`` (caches, connection pools and the allocator settle), then the
measured run of ``--duration-s``. After each drain, with no call in
progress, the daemon's RSS (``/proc/self/statm``) and its live Python objects
(``gc.get_objects()`` after a collection) are taken; their growth from the
first drain to the second, per 1,000 calls ended in between, is
``rss_growth_kb_per_1000_calls_after_warmup`` (flat is about 0) and
``objects_growth_per_1000_calls``. RSS is also sampled every second;
``rss_slope_kb_per_1000_calls_while_placing`` is its least-squares slope
against calls ended during the measured run (it includes the ramp of calls in
progress, so it is only meaningful on long runs). ``left_after_drain`` is
what per-call structures still hold at the end (all 0 when nothing leaks);
``held_after_warmup`` and ``held_at_end`` what the bounded per-agent
structures hold (ledger intervals and window sums: one occupancy window; call
logs: one hard-call window; the router's decision history:
``[routing] decision_history``, 2,000; the voicemail intake's last 1,000 IVR
outcomes).
Those windows are an hour by default, so a run flat after warm-up needs a
warm-up past them, or shorter windows (``--occupancy-window-s``,
``--hard-calls-window-s``); so is the call state's memory of the calls this
daemon handled (``call_state.own``, ``--own-memory-s``), and the router's
history fills at its cap (``--decision-history``).

``--segments N`` measures the run in N drained rounds: growth that falls
round after round is a structure filling to its cap, growth at the same pace
is a leak. ``redis_pool_*`` is the Redis client's pool (the daemon's own
client, a bounded blocking pool), ``reactor_*`` the timers and asyncio tasks
pending. ``--tracemalloc FRAMES`` traces allocations (slow, and its own
bookkeeping makes RSS meaningless: read ``traced_*``) and prints the
allocation sites whose live memory grew most from the warm-up to the end,
each as its innermost frame and the project line that caused it.

``--gc-tuning off`` leaves Python's garbage collector as it starts instead of
what ``shenava run`` does once it serves (``shenava.daemon.tune_gc``).
``--state-folder off`` runs without a ``[state] folder`` (the journal in
memory); the default gives it one, as ``shenava run`` requires, so the
journal's writes and fsyncs go through the reactor's thread pool.

Where RSS is: each round (and every ``--probe-every`` seconds into
``--probe-out``) a probe reads glibc's heap (``mallinfo2``: in use, free inside
the heap), Python's small-object allocator (``sys._debugmallocstats``: 1 MiB
arenas held, bytes in live blocks, free blocks in used pools, empty pools),
the Redis connections and their read buffers, the AMI decoder's buffer and
the threads. Live memory flat while RSS rises is the allocators keeping a
high-water mark, not a structure growing. ``--tracemalloc-every S`` traces
allocations (by line; ``--tracemalloc FRAMES`` for deeper sites) and writes,
every S seconds, the lines whose live memory grew since the previous
snapshot. ``--malloc-trim-every S`` calls glibc's ``malloc_trim(0)`` in the
daemon every S seconds (an experiment; run with ``MALLOC_ARENA_MAX=2`` in the
environment for the other one: both are in the JSON). ``--warmup-rate R``
makes the warm-up busier than the measured run: what is only a high-water
mark (the allocators, the Redis pool's connections) is then reached in the
warm-up and the measured run shows none of it. ``--samples-out`` writes the
one-a-second RSS samples (with the calls in progress) as CSV.

Where things go: each run works in a folder of its own under ``$TMPDIR``
(``shenava-soak-*``: Redis's data, the ``[state]`` journal, the recordings,
``--tracemalloc`` snapshots unless ``--tracemalloc-dump`` names a folder).
The daemon's log goes to no file: its events are counted by level
(``log_events``) and the first five errors and criticals are in the JSON
(``log_errors``). The folder is removed at the end, whatever the outcome
(before, every run left one behind); ``--keep`` keeps it, writes the daemon's
whole log there (``daemon.log``, one formatted event a line), and names it in
the JSON (``folder``; ``null`` when removed) and on stderr. ``--probe-out``
and ``--samples-out`` write where they are told.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import json
import multiprocessing
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
USER, SECRET = "shenava", "soak-secret"
DEFAULT_RATE = 5.0
DEFAULT_DURATION_S = 60.0
LONG_DURATION_S = 1800.0
DEFAULT_WARMUP_S = 20.0
DEFAULT_DRAIN_S = 90.0
PROMPT_S = 0.3  # every prompt plays this long (the PBX's default is 1 s)
SAMPLE_EVERY_S = 1.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB


# --- the scripted callers ----------------------------------------------------------


def caller_script(i: int, rng: random.Random) -> Any:
    from shenava.demo import luhn_complete
    from testpbx.scripts import AfterSpeaking, CallerScript

    lang = rng.choice("12")
    path = rng.choices(
        ["complaint", "status", "voicemail", "callback", "agent", "hangup"],
        weights=[35, 15, 10, 10, 20, 10],
    )[0]
    hangup_after_s: float | None = None
    if path == "complaint":
        account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9))) + "#"
        answers = [lang, "1", str(rng.randint(1, 6)), rng.choice("12"), rng.choice("123"), account, "1"]
    elif path == "status":
        answers = [lang, "2", "".join(rng.choice("0123456789") for _ in range(7)) + "#", "1", ""]
    elif path == "voicemail":
        answers = [lang, "4"]
    elif path == "callback":
        answers = [lang, "5", "1"]
    elif path == "agent":
        answers = [lang, "3"]
    else:
        answers = [lang]
        hangup_after_s = rng.uniform(2.0, 6.0)
    return CallerScript(
        number=f"0913{i:07d}", name=f"Caller {i}", language=None, answers=tuple(answers),
        answer_delay_s=rng.uniform(0.2, 0.6), digit_gap_s=0.1,
        after_speaking=AfterSpeaking.PRESS_HASH, speak_after_s=0.3,
        patience_s=rng.uniform(10.0, 20.0), hangup_after_s=hangup_after_s,
    )


# --- the PBX child -----------------------------------------------------------------


def pbx_child(conn: Connection, rate: float, seed: int, root: str, endpoints: list[str]) -> None:
    from twisted.internet import reactor as global_reactor
    from twisted.internet.task import LoopingCall

    from benchmarks.ivr_sessions import _prompt_names
    from shenava.config import default_config
    from testpbx.options import PbxOptions
    from testpbx.scripts import PhoneScript
    from testpbx.server import listen_testpbx
    from testpbx.world import PbxWorld

    reactor: Any = global_reactor
    support = default_config().site.support_context
    names = _prompt_names()
    world = PbxWorld(reactor, PbxOptions(
        users={USER: SECRET}, recordings_root=Path(root), support_context=support,
        prompt_lengths_s={f"shenava/{name}": PROMPT_S for name in names}
        | {name: PROMPT_S for name in names},
        seed=seed,
    ))
    for endpoint in endpoints:
        world.register_phone(endpoint, PhoneScript(answer_after_s=1.0, talk_s=3.0))
    port: Any = listen_testpbx(reactor, 0, world, interface=HOST)
    conn.send(("port", port.getHost().port))
    rng = random.Random(seed)
    state: dict[str, Any] = {"placed": 0, "until": 0.0}

    def place() -> None:
        if reactor.seconds() >= state["until"]:
            placer.stop()
            conn.send(("placed", state["placed"]))
            return
        world.place_call(caller_script(state["placed"], rng))
        state["placed"] += 1

    placer = LoopingCall(place)
    placer.clock = reactor

    def poll() -> None:
        while conn.poll():
            message = conn.recv()
            if message == "stop":
                reactor.stop()
            else:  # ("go", seconds, rate): place calls for that long
                state["until"] = reactor.seconds() + message[1]
                placer.start(1.0 / (message[2] or rate))

    LoopingCall(poll).start(0.05)
    reactor.run()


# --- the daemon side -----------------------------------------------------------------


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y against x."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def per_call_sizes(app: Any) -> dict[str, int]:
    """What each per-call structure holds (all 0 once every call has ended)."""
    protocol = app.connection.protocol
    sizes = {
        "callflow.sessions": len(app.callflow._sessions),
        "callflow.seen": len(app.callflow._seen),
        "tracker.channels": len(app.tracker.channels),
        "tracker.calls": len(app.tracker.calls),
        "tracker.by_name": len(app.tracker._by_name),
        "tracker.locals": len(app.tracker._locals),
        "counts.callers": len(app.counts.callers),
        "dispatcher.waiting": app.dispatcher.waiting,
    }
    if app.http is not None:
        sizes["screen_pop.memory"] = len(app.http.memory)
    if protocol is not None:
        sizes["protocol.agi"] = len(protocol._agi)
        sizes["protocol.agi_by_channel"] = len(protocol._agi_by_channel)
        sizes["protocol.pending"] = len(protocol._pending)
    journal = getattr(app, "journal", None)
    if journal is not None:  # entries waiting, in flight, to write, answers owed
        for name in ("_queue", "_in_flight", "_to_write", "_answers", "_file_ops"):
            sizes[f"journal.{name.lstrip('_')}"] = len(getattr(journal, name, ()))
    # Others' per-call maps, by name, where present (reported, not asserted).
    for owner, names in (
        (app.dispatcher, ("_calls", "_legs", "_originates", "_held")),
        (getattr(app.agent_stats, "calls", None), ("calls",)),
        (getattr(app.agent_stats, "desk", None), ("_start_calls", "held")),
    ):
        for name in names:
            value = getattr(owner, name, None) if owner is not None else None
            if value is not None and hasattr(value, "__len__"):
                sizes[f"{type(owner).__name__}.{name.lstrip('_')}"] = len(value)
    return sizes


def held_sizes(app: Any) -> dict[str, int]:
    """What the per-agent and bounded structures hold (reported, not asserted): the
    agents' ledger intervals (one occupancy window), their window sums and call logs,
    and the caches bounded by a count (the router's decision history)."""
    stats = app.agent_stats
    sizes: dict[str, int] = {"router.decisions": len(getattr(app.router, "_decisions", ())),
                             "counts.waits_answered": len(app.counts.waits_answered)}
    takeover = getattr(app, "takeover", None)
    if takeover is not None:
        sizes["call_state.own"] = len(takeover.recorder._own)
    recordings = getattr(app, "recordings", None)
    if recordings is not None:
        sizes["voicemail.outcomes"] = len(recordings.service._outcomes)
    if stats is None:
        return sizes
    recent = stats.recent  # the traffic window (30 minutes) of arrivals, handles, completions
    sizes["traffic.window"] = len(recent.arrivals) + len(recent.handles) + len(recent.completions)
    sizes["calllog.open"] = sum(len(c._open) for c in stats._call_logs.values())
    sizes["ledger.intervals"] = sum(len(s.ledger.intervals) for s in stats.roster)
    sizes["window.intervals"] = sum(len(w._ends) for w in stats._windows.values())
    sizes["calllog.calls"] = sum(len(c) for c in stats._call_logs.values())
    return sizes


def pool_size(client: Any) -> dict[str, int]:
    """The Redis client's connection pool: connections made (idle + in use) and
    its background release tasks (each a possible leftover)."""
    pool = client.connection_pool
    idle = len(getattr(pool, "_available_connections", ()) or ())
    busy = len(getattr(pool, "_in_use_connections", ()) or ())
    return {
        "connections": idle + busy,
        "in_use": busy,
        "max_connections": int(pool.max_connections),
        "background_releases": len(getattr(pool, "_background_releases", ()) or ()),
    }


def reactor_sizes(reactor: Any) -> dict[str, int]:
    """Timers pending on the reactor and asyncio tasks alive: leftovers show here."""
    import asyncio

    loop = getattr(reactor, "_asyncioEventloop", None)
    sizes = {"delayed_calls": len(reactor.getDelayedCalls())}
    if loop is not None:
        sizes["asyncio_tasks"] = len(asyncio.all_tasks(loop))
        sizes["asyncio_scheduled"] = len(getattr(loop, "_scheduled", ()))
    return sizes


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None


LIBC = _libc()


def glibc_malloc() -> dict[str, int] | None:
    """glibc's heap (``mallinfo2``, every arena), KB: ``heap`` obtained with brk/in
    arenas, ``mmap`` in large blocks, ``in_use`` and ``free`` (in the heap, not returned),
    ``top_free`` (at its top: what a plain trim could give back)."""
    if LIBC is None:
        return None
    info = LIBC.mallinfo2()
    return {"heap_kb": info.arena // 1024, "mmap_kb": info.hblkhd // 1024,
            "in_use_kb": info.uordblks // 1024, "free_kb": info.fordblks // 1024,
            "top_free_kb": info.keepcost // 1024}


def malloc_trim() -> int:
    """glibc's ``malloc_trim(0)``: give back the free pages of every arena."""
    return int(LIBC.malloc_trim(0)) if LIBC is not None else -1


def pymalloc() -> dict[str, int]:
    """Python's small-object allocator (``sys._debugmallocstats``, which writes to
    the C stderr): arenas of 1 MiB held (each one mapped until all its pools are
    empty), the bytes in live blocks, free in partly used pools, and in empty pools."""
    import re

    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("ascii", "replace")

    def number(pattern: str) -> int:
        found = re.search(pattern + r"\s*=\s*([\d,]+)", text)
        return int(found.group(1).replace(",", "")) if found else -1

    unused = re.search(r"(\d+) unused pools \* (\d+) bytes", text)
    return {
        "arenas": number(r"# arenas allocated current"),
        "arenas_highwater": number(r"# arenas highwater mark"),
        "arenas_reclaimed": number(r"# arenas reclaimed"),
        "allocated_kb": number(r"# bytes in allocated blocks") // 1024,
        "available_kb": number(r"# bytes in available blocks") // 1024,
        "unused_pools_kb": int(unused.group(1)) * int(unused.group(2)) // 1024 if unused else -1,
    }


def buffers(app: Any, client: Any) -> dict[str, int]:
    """Bytes held (allocated, not only used) by the I/O buffers: every Redis
    connection's stream reader and parser, the AMI decoder and its transport."""
    pool = client.connection_pool
    conns = list(getattr(pool, "_available_connections", ()) or ()) + \
        list(getattr(pool, "_in_use_connections", ()) or ())
    readers = parsers = 0
    for conn in conns:
        reader = getattr(conn, "_reader", None)
        readers += sys.getsizeof(getattr(reader, "_buffer", b"")) if reader is not None else 0
        parsers += sys.getsizeof(getattr(getattr(conn, "_parser", None), "_buffer", b"") or b"")
    sizes = {"redis_connections": len(conns), "redis_readers": readers, "redis_parsers": parsers}
    protocol = app.connection.protocol
    if protocol is not None:
        sizes["ami_decoder"] = sys.getsizeof(protocol._decoder._buffer)
        transport = protocol.transport
        sizes["ami_transport"] = len(getattr(transport, "dataBuffer", b"")) + sum(
            len(chunk) for chunk in getattr(transport, "_tempDataBuffer", ()))
    return sizes


def memory_probe(app: Any, client: Any) -> dict[str, Any]:
    """RSS and where it is: glibc's heap, Python's arenas, the I/O buffers, threads."""
    import threading

    return {"rss_kb": rss_kb(), "glibc": glibc_malloc(), "pymalloc": pymalloc(),
            "buffers": buffers(app, client), "threads": threading.active_count()}


def _site(frames: Any) -> str:
    """A traceback in short: the innermost frame and the innermost project frame
    (the code that made the allocation happen), the rest dropped."""
    root = str(Path(__file__).resolve().parents[1])
    frames = list(reversed(frames))  # tracemalloc lists the oldest frame first
    inner = frames[0]
    here = f"{Path(inner.filename).name}:{inner.lineno}"
    for frame in frames:
        if frame.filename.startswith(root) and "/.venv/" not in frame.filename \
                and not frame.filename.endswith("soak.py"):
            if frame is not inner:
                here += f" < {Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
            break
    return here


def top_growers(before: Any, after: Any, limit: int) -> list[dict[str, Any]]:
    """The allocation sites whose live memory grew most between two snapshots,
    grouped by :func:`_site`."""
    grouped: dict[str, list[int]] = {}
    for stat in after.compare_to(before, "traceback"):
        sums = grouped.setdefault(_site(stat.traceback), [0, 0])
        sums[0] += stat.size_diff
        sums[1] += stat.count_diff
    ranked = sorted(grouped.items(), key=lambda item: item[1][0], reverse=True)
    return [
        {"kb": round(size / 1024, 1), "count": count, "site": site}
        for site, (size, count) in ranked[:limit]
    ]


@contextlib.contextmanager
def run_folder(keep: bool) -> Iterator[Path]:
    """The run's own folder under ``$TMPDIR``: removed on the way out (whatever
    happened) unless ``keep``, then named on stderr."""
    work = Path(tempfile.mkdtemp(prefix="shenava-soak-"))
    try:
        yield work
    finally:
        if keep:
            print(f"soak: the run's folder is kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with run_folder(args.keep) as work, contextlib.ExitStack() as stack:
        log_file = stack.enter_context(open(work / "daemon.log", "w")) if args.keep else None  # noqa: SIM115
        result = _run(args, work, log_file)
        result["folder"] = str(work) if args.keep else None
        return result


def _run(args: argparse.Namespace, work: Path, log_file: Any) -> dict[str, Any]:
    from shenava_base.aio import install_asyncio_reactor

    reactor: Any = install_asyncio_reactor()
    if args.tracemalloc_every and not args.tracemalloc:
        args.tracemalloc = 1  # by line
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import LoopingCall, deferLater
    from twisted.logger import eventAsText, formatEvent, globalLogBeginner

    from shenava.app import Shenava
    from shenava.config import default_config
    from shenava.redis_client import make_redis_client
    from shenava.redis_server import start_redis_server
    from shenava.routing_log import RoutingLog
    from shenava_base.aio import as_deferred

    levels: Counter[str] = Counter()
    errors: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        levels.update([event["log_level"].name])
        if event["log_level"].name in ("error", "critical") and len(errors) < 5:
            errors.append(formatEvent(event)[:300])
        if log_file is not None:  # --keep: the whole log, in the run's folder
            log_file.write(eventAsText(event) + "\n")

    # Logging must start somewhere: until it does, twisted.logger keeps the
    # last 65,536 events in memory, which would look like growth.
    globalLogBeginner.beginLoggingTo([cast(Any, observe)], redirectStandardIO=False)

    root = work / "recordings"
    server = start_redis_server(work / "redis")
    config = default_config()
    endpoints = [agent.endpoint for agent in config.agents]
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=pbx_child,
        args=(child, args.rate, args.seed, str(root), endpoints),
        daemon=True,
    )
    proc.start()
    result: dict[str, Any] = {}
    try:
        if not parent.poll(60):
            raise SystemExit("the test PBX child did not start")
        _, port = parent.recv()
        config = replace(
            config,
            ami=replace(config.ami, host=HOST, port=port, secret=SECRET),
            redis=replace(config.redis, url=server.url),
            recordings=replace(config.recordings, dir=root / "voicemail", asterisk_dir=None),
        )
        if args.state_folder == "on":  # as `shenava run` requires: the journal on disk, fsynced
            (work / "state").mkdir()
            config = replace(config, state=replace(config.state, folder=str(work / "state")))
        if args.occupancy_window_s is not None:
            config = replace(config, wellbeing=replace(
                config.wellbeing, occupancy_window_s=args.occupancy_window_s))
        if args.hard_calls_window_s is not None:
            config = replace(config, wellbeing=replace(
                config.wellbeing, hard_calls_window_s=args.hard_calls_window_s))
        # The client `shenava run` makes: a bounded, blocking connection pool.
        client = make_redis_client(config.redis)
        app = Shenava(config, reactor=reactor, redis=client)
        routing_log = RoutingLog().attach(app.dispatcher, app.tracker)  # as `shenava run` does
        if args.decision_history is not None:  # before the first call
            app.router._history = args.decision_history
        if args.traffic_window_s is not None and app.agent_stats is not None:
            app.agent_stats.recent.window_s = args.traffic_window_s
        if args.own_memory_s is not None and app.takeover is not None:
            app.takeover.recorder.own_memory_s = args.own_memory_s
        # (seconds, calls ended, rss kb, calls in progress), flat in an array: a list of tuples would be
        # the benchmark's own growth (about 150 bytes a second, 30 KB per 1,000 calls at 5/s)
        flat_samples = array("d")
        state: dict[str, Any] = {"t0": None, "placed": None, "rounds": []}

        def sample() -> None:
            if state["t0"] is None:
                return
            flat_samples.extend((time.monotonic() - state["t0"], app.counts.ended, rss_kb(),
                                 len(app.counts.callers)))

        probes = open(args.probe_out, "w") if args.probe_out else None  # noqa: SIM115
        trims: dict[str, float] = {"count": 0, "seconds": 0.0, "released": 0}

        def probe() -> None:
            """Every ``--probe-every`` seconds: where RSS is (one JSON line)."""
            if state["t0"] is None or probes is None:
                return
            line = {"t_s": round(time.monotonic() - state["t0"], 1), "calls": app.counts.ended,
                    "in_progress": len(app.counts.callers)} | memory_probe(app, client)
            if args.tracemalloc:
                line["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
            probes.write(json.dumps(line) + "\n")
            probes.flush()

        def trace_step() -> None:
            """Every ``--tracemalloc-every`` seconds: the lines whose live memory grew
            most since the previous snapshot (the snapshot kept for the next step is
            left out of the trace by the filter on tracemalloc's own file)."""
            if state["t0"] is None:
                return
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            previous = state.get("trace_previous")
            state["trace_previous"] = snapshot
            if previous is None:
                return
            line = {"t_s": round(time.monotonic() - state["t0"], 1), "calls": app.counts.ended,
                    "in_progress": len(app.counts.callers), "rss_kb": rss_kb(),
                    "traced_kb": tracemalloc.get_traced_memory()[0] // 1024,
                    "grew": top_growers(previous, snapshot, 10)}
            if probes is not None:
                probes.write(json.dumps(line) + "\n")
                probes.flush()
            else:
                print(json.dumps(line), file=sys.stderr)

        def trim() -> None:
            before = rss_kb()
            started = time.perf_counter()
            malloc_trim()
            trims["seconds"] += time.perf_counter() - started
            trims["count"] += 1
            trims["released"] += before - rss_kb()

        async def place_and_drain(seconds: float, rate: float | None = None) -> dict[str, Any]:
            """Place calls for ``seconds``, wait until every call has ended, measure."""
            state["placed"] = None
            parent.send(("go", seconds, rate))
            await deferLater(reactor, seconds, lambda: None)
            deadline = time.monotonic() + args.drain_s
            while time.monotonic() < deadline:
                await deferLater(reactor, 1.0, lambda: None)
                while parent.poll():
                    kind, value = parent.recv()
                    if kind == "placed":
                        state["placed"] = value
                if state["placed"] is not None and not app.counts.callers \
                        and not app.callflow.in_ivr and not app.dispatcher.waiting:
                    break
            await deferLater(reactor, 10.0, lambda: None)  # wrap-up, the last writes
            gc.collect()
            if args.census:
                state.setdefault("census", []).append(
                    Counter(type(o).__qualname__ for o in gc.get_objects())
                )
            traced_kb = None
            if args.tracemalloc:
                # Measured before the snapshot, and the snapshot kept on disk only:
                # held in memory it would be traced memory too.
                traced_kb = tracemalloc.get_traced_memory()[0] // 1024
                snapshots = state.setdefault("snapshots", [])
                path = Path(args.tracemalloc_dump or work) / f"round{len(snapshots) + 1}.snap"
                tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)]).dump(str(path))
                snapshots.append(path)
            left = per_call_sizes(app)
            left["routing_log.joined"] = len(routing_log._joined)
            left["routing_log.answered"] = len(routing_log._answered)
            return {
                "memory": memory_probe(app, client),
                "t": time.monotonic() - state["t0"], "calls": app.counts.ended,
                "placed": state["placed"], "rss_kb": rss_kb(), "objects": len(gc.get_objects()),
                "traced_kb": traced_kb,
                "left": left, "held": held_sizes(app),
                "redis_pool": pool_size(client), "reactor": reactor_sizes(reactor),
            }

        async def soak() -> None:
            await app.when_connected()
            for agent in config.agents:
                app.roster.log_in(agent.id, reactor.seconds())
            state["rss_start_kb"] = rss_kb()
            state["t0"] = time.monotonic()
            # Warm-up: calls until caches, pools and the allocator settle; then
            # the measured run, both ending with no call in progress.
            state["rounds"].append(await place_and_drain(args.warmup_s, args.warmup_rate))
            for _ in range(args.segments):
                state["rounds"].append(await place_and_drain(args.duration_s / args.segments))
            await app.stop()
            await as_deferred(client.aclose())

        def finished(outcome: object) -> None:
            state["outcome"] = outcome
            reactor.stop()

        app.start(serve_http=False)
        if args.gc_tuning == "on":  # as DaemonRun._lead does (docs/scaling.md)
            from shenava.daemon import tune_gc

            tune_gc(config.daemon.gc_gen0_threshold)
        sampler = LoopingCall(sample)
        sampler.clock = reactor
        sampler.start(SAMPLE_EVERY_S)
        for every, step in ((args.probe_every, probe), (args.tracemalloc_every, trace_step),
                            (args.malloc_trim_every, trim)):
            if every and (step is not probe or probes is not None):
                looping = LoopingCall(step)
                looping.clock = reactor
                looping.start(every, now=False)
        limit = args.warmup_s + args.duration_s + (1 + args.segments) * (args.drain_s + 10) + 120
        reactor.callLater(limit, lambda: reactor.running and reactor.stop())  # a hard bound
        reactor.callWhenRunning(lambda: ensureDeferred(soak()).addBoth(finished))
        reactor.run()
        outcome = state.get("outcome")
        if outcome is not None and hasattr(outcome, "getTraceback"):
            print(outcome.getTraceback(), file=sys.stderr)
        rounds = state["rounds"]
        samples = [(flat_samples[i], int(flat_samples[i + 1]), int(flat_samples[i + 2]))
                   for i in range(0, len(flat_samples), 4)]
        in_progress = [int(flat_samples[i]) for i in range(3, len(flat_samples), 4)]
        warm, done = (rounds[:1] + rounds[-1:] + [None, None])[:2] if len(rounds) >= 2 else (None, None)
        measured = done["calls"] - warm["calls"] if warm and done else 0
        growth = objects_growth = slope_kb = None
        if warm and done and measured > 0:
            growth = (done["rss_kb"] - warm["rss_kb"]) * 1000 / measured
            objects_growth = (done["objects"] - warm["objects"]) * 1000 / measured
            during = [(float(c), float(kb)) for t, c, kb in samples if warm["t"] <= t <= done["t"]]
            per_call = slope(during)
            slope_kb = per_call * 1000 if per_call is not None else None
        census = state.get("census", [])
        if len(census) >= 2:
            for name, count in (census[-1] - census[0]).most_common(20):
                print(f"grew: {count:8d} {name}", file=sys.stderr)
        # Each measured segment's growth: a structure filling to its cap grows less
        # in each segment; one growing forever keeps the same pace.
        segments = []
        for before, after in zip(rounds, rounds[1:], strict=False):
            calls = after["calls"] - before["calls"]
            if calls <= 0:
                continue
            segment: dict[str, Any] = {
                "calls": calls,
                "rss_kb_per_1000_calls": round((after["rss_kb"] - before["rss_kb"]) * 1000 / calls, 1),
                "objects_per_1000_calls": round((after["objects"] - before["objects"]) * 1000 / calls, 1),
            }
            if args.tracemalloc:
                segment["traced_kb_per_1000_calls"] = round(
                    (after["traced_kb"] - before["traced_kb"]) * 1000 / calls, 1)
            segments.append(segment)
        if args.samples_out:
            with open(args.samples_out, "w") as out:
                out.write("t_s,calls_ended,rss_kb,in_progress\n")
                for (t, c, kb), now in zip(samples, in_progress, strict=True):
                    out.write(f"{t:.1f},{c},{kb},{now}\n")
        growers: list[dict[str, Any]] = []
        snapshots = state.get("snapshots", [])
        if len(snapshots) >= 2:
            tracemalloc.stop()
            growers = top_growers(
                tracemalloc.Snapshot.load(str(snapshots[0])), tracemalloc.Snapshot.load(str(snapshots[-1])), 25)
            for grower in growers:
                print(f"traced: {grower['kb']:9.1f} KB {grower['count']:7d} {grower['site']}", file=sys.stderr)
        result = {
            "bench": "soak",
            "rate_per_s": args.rate,
            "warmup_rate_per_s": args.warmup_rate or args.rate,
            "gc_tuning": args.gc_tuning,
            "state_folder": args.state_folder,
            "warmup_s": args.warmup_s,
            "duration_s": args.duration_s,
            "placed": rounds[-1]["placed"] if rounds else None,
            "calls": app.counts.ended,
            "calls_after_warmup": measured,
            "ivr_sessions": app.callflow.sessions_started,
            "answered": app.counts.answered,
            "abandoned": app.counts.abandoned,
            "rss_start_mb": round(state.get("rss_start_kb", 0) / 1024, 1),
            "rss_after_warmup_mb": round(warm["rss_kb"] / 1024, 1) if warm else None,
            "rss_end_mb": round(done["rss_kb"] / 1024, 1) if done else None,
            "rss_max_mb": round(max((kb for _, _, kb in samples), default=0) / 1024, 1),
            "in_progress_max": max(in_progress, default=0),
            "rss_slope_kb_per_1000_calls_while_placing": round(slope_kb, 1) if slope_kb is not None else None,
            "objects_growth_per_1000_calls": round(objects_growth, 1) if objects_growth is not None else None,
            "segments": segments,
            "rounds": [
                {"t_s": round(r["t"]), "calls": r["calls"], "rss_mb": round(r["rss_kb"] / 1024, 1),
                 "in_progress_max": max((now for (t, _, _), now in zip(samples, in_progress, strict=True)
                                         if (rounds[i - 1]["t"] if i else 0) <= t <= r["t"]), default=0),
                 "objects": r["objects"], "held": r["held"]} | r["memory"]
                for i, r in enumerate(rounds)
            ],
            "traced_growth_kb_per_1000_calls": round(
                (done["traced_kb"] - warm["traced_kb"]) * 1000 / measured, 1)
            if args.tracemalloc and warm and done and measured else None,
            "tracemalloc_top_growers": growers[:8],
            "redis_pool_after_warmup": warm["redis_pool"] if warm else None,
            "redis_pool_at_end": done["redis_pool"] if done else None,
            "reactor_after_warmup": warm["reactor"] if warm else None,
            "reactor_at_end": done["reactor"] if done else None,
            "left_after_drain": done["left"] if done else None,
            "occupancy_window_s": config.wellbeing.occupancy_window_s,
            "hard_calls_window_s": config.wellbeing.hard_calls_window_s,
            "held_after_warmup": warm["held"] if warm else None,
            "held_at_end": done["held"] if done else None,
            "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
            "pythonmalloc": os.environ.get("PYTHONMALLOC"),
            "malloc_trim_every_s": args.malloc_trim_every,
            "malloc_trims": {"count": trims["count"], "ms_total": round(trims["seconds"] * 1000, 1),
                             "rss_released_kb": trims["released"]},
            "log_events": dict(sorted(levels.items())),
            "log_errors": errors[:5],
            "python": platform.python_version(),
            "rss_growth_kb_per_1000_calls_after_warmup": round(growth, 1) if growth is not None else None,
        }
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="calls placed a second")
    parser.add_argument(
        "--warmup-rate", type=float, default=None,
        help="calls a second during the warm-up (default: --rate); higher than --rate, the "
        "measured run stays under the warm-up's peaks: growth that is a high-water mark "
        "(the allocators, the Redis pool) then shows as none",
    )
    parser.add_argument("--duration-s", type=float, default=DEFAULT_DURATION_S)
    parser.add_argument("--long", action="store_true", help=f"run {LONG_DURATION_S:g} s")
    parser.add_argument("--warmup-s", type=float, default=DEFAULT_WARMUP_S)
    parser.add_argument("--drain-s", type=float, default=DEFAULT_DRAIN_S)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--occupancy-window-s", type=float, default=None,
        help="the agents' occupancy window (default: the config's, an hour): the ledgers "
        "hold one window of intervals, so a run flat after warm-up needs a warm-up past it",
    )
    parser.add_argument(
        "--hard-calls-window-s", type=float, default=None,
        help="the hard-call window (default: the config's, an hour): the agents' call logs "
        "hold one window of calls",
    )
    parser.add_argument(
        "--decision-history", type=int, default=None,
        help="the router's decision history (default: the config's, [routing] decision_history)",
    )
    parser.add_argument(
        "--own-memory-s", type=float, default=None,
        help="how long the call state remembers a call as this daemon's own (default: an hour, "
        "held as one hour of calls): shorter than the warm-up for a run flat after it",
    )
    parser.add_argument(
        "--traffic-window-s", type=float, default=None,
        help="the statistics' traffic window (default: 30 minutes of arrivals, handles and "
        "completions): shorter than the warm-up for a run flat after it",
    )
    parser.add_argument(
        "--census", action="store_true",
        help="print to stderr the object types that grew from the warm-up to the end",
    )
    parser.add_argument(
        "--segments", type=int, default=1,
        help="split the measured run into this many rounds, each drained and measured: "
        "growth that falls segment after segment is a cache filling to its cap",
    )
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES",
        help="trace allocations (this many frames a site; slows the daemon) and print "
        "the sites that grew most from the warm-up to the end",
    )
    parser.add_argument(
        "--tracemalloc-dump", metavar="DIR", default=None,
        help="with --tracemalloc, keep each round's snapshot there (tracemalloc.Snapshot.load)",
    )
    parser.add_argument(
        "--samples-out", metavar="PATH", default=None,
        help="write the RSS samples (one a second: seconds, calls ended, RSS KB) there as CSV",
    )
    parser.add_argument(
        "--probe-every", type=float, default=60.0, metavar="S",
        help="with --probe-out: every S seconds, where RSS is (glibc's heap, Python's arenas, "
        "the Redis and AMI buffers, threads)",
    )
    parser.add_argument("--probe-out", metavar="PATH", default=None,
                        help="write the probes (and --tracemalloc-every's steps) there, one JSON a line")
    parser.add_argument(
        "--tracemalloc-every", type=float, default=0.0, metavar="S",
        help="trace allocations (by line, or --tracemalloc FRAMES) and every S seconds write "
        "the lines whose live memory grew most since the previous snapshot",
    )
    parser.add_argument(
        "--malloc-trim-every", type=float, default=0.0, metavar="S",
        help="an experiment: call glibc's malloc_trim(0) every S seconds in the daemon",
    )
    parser.add_argument(
        "--state-folder", choices=["on", "off"], default="on",
        help="a [state] folder for the journal (on, as `shenava run` requires: its writes "
        "and fsyncs go through the reactor's thread pool) or none (off: the journal in memory)",
    )
    parser.add_argument(
        "--keep", action="store_true",
        help="keep the run's folder (Redis data, journal, recordings, and the daemon's log as "
        "daemon.log), named in the JSON's folder; without it the folder is removed at the end",
    )
    parser.add_argument("--gc-tuning", choices=["on", "off"], default="on",
                        help="the daemon's gc.freeze and gen-0 threshold (off: Python's defaults)")
    args = parser.parse_args(argv)
    args.segments = max(1, args.segments)
    if args.long:
        args.duration_s = LONG_DURATION_S
        args.warmup_s = max(args.warmup_s, 300.0)  # past the bounded caches (1,000 outcomes)
    result = run(args)
    print(json.dumps(result))
    return 0 if result.get("calls") else 1


if __name__ == "__main__":
    raise SystemExit(main())
