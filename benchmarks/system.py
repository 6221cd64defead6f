"""The whole system at stepped call rates: daemon, test PBX in another process, real Redis.

    .venv/bin/python benchmarks/system.py [--rates 2,5,10] [--step-s 20] [--agents 100]
                                          [--drain-s 60] [--prompt-s 0.5] [--daemon-cpu N]

A child process (``multiprocessing``, spawn) runs the test PBX with the load
``shenava testpbx --call-rate R --caller-mix demo --patience-s 120 --agents N
--talk-s 10`` generates (``shenava.testpbx_cmd.CallerLoad``): ``--agents``
agent phones (answer after 1 s, talk 10 s) and callers from the demo's mix
(complaints, agents, status look-ups, voicemails, callbacks) at each step's
rate, Poisson arrivals, for ``--step-s`` seconds. A real ``redis-server`` is started
on a free loopback port. This process runs the daemon as ``shenava run``
builds it (:class:`shenava.app.Shenava` with Redis: IVR, routing, complaints,
statistics, recordings) with ``--agents`` agents, logged in at the start; each
prompt plays ``--prompt-s`` (as in ``ivr_sessions``) to keep steps short.

Per step (calls placed during the step; what happened to them counted until
``--drain-s`` after the step, or until every call is accounted):

- ``placed`` and ``accounted`` (calls whose IVR reached an outcome);
- ``daemon_cpu_ms_per_call``: this process's CPU time (user + system) over the
  step and its drain, per call placed. It includes this harness's own small
  work (timing wrappers, sampling); the PBX and Redis are other processes;
- ``redis_commands_per_call``: ``INFO commandstats`` calls, before and after,
  less the harness's own ``INFO``, per call placed (what Redis executes,
  counting the commands inside scripts and transactions);
- ``redis_reads_per_call``: ``INFO stats`` ``total_reads_processed``, the
  reads Redis made from its clients' sockets, per call placed: about one per
  round trip (several commands pipelined in one write are one read);
- ``agi_ms``: p50/p99 of AGI commands that play nothing (``SET VARIABLE``,
  ``GET VARIABLE``, ``ANSWER``, ``HANGUP``...): the round trip through the
  daemon's protocol, including the PBX's 20 ms AsyncAGI pickup;
- ``routing_ms``: p50/p99 from a call joining the waiting line
  (``CallQueued``) to its offer to an agent (``CallOffered``), for the calls
  offered; it includes waiting for a free agent when all are busy;
- ``rss_mb``: this process's resident memory at the end of the step;
- ``pbx_cores``: the test PBX process's CPU over the step and its drain, in
  cores (near 1.0, the PBX cannot place more calls: ``placed`` falls short);
- ``loop_per_call``: exact counts per call that load does not move: loop
  iterations (stdlib loop only), AMI reads, writes and sends, write-behind
  turns, ``addWriter`` calls, Redis sends (:mod:`benchmarks._loop_counts`: the
  socket writes of the daemon's Redis connections, batches and fast path
  included; Redis's side of them is ``redis_reads_per_call``).
  The loop is the stdlib's unless ``SHENAVA_EVENT_LOOP=uvloop``, as for ``shenava run``.

``max_sustained_calls_per_s`` is the highest rate at which, at that rate and
every lower one, every call was accounted and the AGI p99 stayed under 100 ms.
The steps are short, and the daemon shares 2 cores with the PBX and Redis (and
anything else running): one scheduling stall can put a step's p99 over 100 ms,
so read several runs. The last line is one JSON
object, with the figures at 50 calls/s when that rate was run.

``--daemon-nodelay off`` runs the daemon's AMI connection with Nagle's
algorithm, as before ``TCP_NODELAY`` was set; ``--pbx-nodelay off`` does the
same on the PBX's side (Asterisk's manager sets the option, so ``on`` is the
realistic PBX).

``--daemon-cpu N`` pins the daemon (this process, every thread) to core N and
the test PBX child and Redis (every thread of each server) to the other cores
(``os.sched_setaffinity``), so the daemon has exactly one core, as in the
issue's "150 calls/s with the daemon on one core"; the JSON's ``pinning``
says whether it was pinned and to what. Other programs on the machine are not
moved: a core shared with them is still shared.

``--gc-tuning off`` leaves Python's garbage collector as it starts (700, 10,
10, nothing frozen) instead of what ``shenava run`` does once it serves
(``shenava.daemon.tune_gc``: start-up frozen, ``[daemon] gc_gen0_threshold``);
each step's ``gc`` gives the collections per generation, their total and
longest pause in ms (``gc.callbacks``, wall clock, so a pause includes any
time the core was taken away).

``--cluster`` starts a 3-master Redis Cluster on loopback instead
(``shenava.redis_cluster_server``) and runs the daemon as site ``bench`` on it
with its own cluster client (docs/scaling.md, "Sites and Redis Cluster");
``redis_commands_per_call`` then sums every master's ``INFO commandstats``.

``--state-folder`` gives the daemon a state folder (in the run's temporary
folder), as ``shenava run`` requires: the journal's appends, fsyncs and cursor
then run as in production, in a worker thread whose CPU the figures include
(``getrusage`` counts every thread). Without it the journal is kept in memory,
as before.

``--by-kind`` adds ``redis_per_call_by_kind`` to each step: commands per call
by command and key family (``RPUSH {stats}:intervals``, ``lua HSET {calls}:live``),
from ``redis-cli MONITOR`` (:mod:`benchmarks.redis_kinds`).

``--profile PATH`` profiles the daemon (this process's reactor thread) from
the first step to the last (:mod:`benchmarks._profiling`): the raw profile at
PATH, and its top ``--profile-top`` entries by self and by cumulative time,
in CPU microseconds per call placed, plus the self time by package, in
``PATH.top.txt`` and on stderr. ``--profiler cprofile`` (the default) gives
exact call counts but its cost per Python call skews the split towards small
functions; ``--profiler pyinstrument`` samples (``pip install pyinstrument``).
Both slow the daemon, so a profiled run's CPU per call is not a figure.

Bounded: every step ends after ``--step-s + --drain-s`` at most, and the run
after the last step.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
USER, SECRET = "shenava", "bench-secret"
AGENT_BASE = 3000
SHIPPED_MANAGER_CONF = Path(__file__).resolve().parents[1] / "etc" / "asterisk" / "manager.conf"
PLAYING_VERBS = (
    "STREAM", "CONTROL", "GET DATA", "SAY", "EXEC", "RECORD", "WAIT",
)
"""AGI commands whose answer waits for something to play or for the caller."""


# --- the PBX child ---------------------------------------------------------------


def pbx_child(conn: Connection, agents: int, seed: int, prompt_s: float, root: str,
              no_delay: bool = True, manager_conf: str | None = None) -> None:
    from twisted.internet import reactor as global_reactor
    from twisted.internet.task import LoopingCall

    from benchmarks.ivr_sessions import _prompt_names
    from shenava.config import default_config
    from shenava.testpbx_cmd import CallerLoad
    from testpbx.options import PbxOptions
    from testpbx.server import listen_testpbx
    from testpbx.world import PbxWorld

    reactor: Any = global_reactor
    names = _prompt_names()
    rights = {}
    channelvars: tuple[str, ...] = ()
    if manager_conf is not None:
        from shenava.check_config import ami_rights, manager_channelvars

        rights = {USER: ami_rights(Path(manager_conf), USER)}
        channelvars = manager_channelvars(Path(manager_conf))  # ChanVariable: SHENAVA_LANG=
    world = PbxWorld(reactor, PbxOptions(
        users={USER: SECRET}, rights=rights, channelvars=channelvars, recordings_root=Path(root),
        support_context=default_config().site.support_context,
        prompt_lengths_s={f"shenava/{n}": prompt_s for n in names} | {n: prompt_s for n in names},
        seed=seed,
    ))
    port: Any = listen_testpbx(reactor, 0, world, interface=HOST, no_delay=no_delay)
    conn.send(("port", port.getHost().port))
    # what ``shenava testpbx --call-rate R --agents N --talk-s T`` runs
    load = CallerLoad(reactor, world, call_rate=0.0, caller_mix="demo", patience_s=120.0,
                      agents=agents, talk_s=10.0, seed=seed)

    def step_over() -> None:
        load.stop()
        conn.send(("placed", load.placed))

    def poll() -> None:
        while conn.poll():
            message = conn.recv()
            if message[0] == "step":
                _, rate, seconds = message
                load.call_rate, load.placed = rate, 0
                load.start()
                reactor.callLater(seconds, step_over)
            elif message[0] == "stop":
                reactor.stop()

    LoopingCall(poll).start(0.05)
    reactor.run()


# --- the daemon side -------------------------------------------------------------------


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def thread_ids(pid: int) -> list[int]:
    """Every thread of a process (affinity is per thread; new threads inherit it)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def pin(pid: int, cpus: set[int]) -> bool:
    """Pin every thread of ``pid`` to ``cpus``; False when the system refused."""
    done = False
    for tid in thread_ids(pid):
        try:
            os.sched_setaffinity(tid, cpus)
            done = True
        except OSError:
            pass
    return done


def pin_processes(daemon_cpu: int | None, others: list[int]) -> dict[str, Any]:
    """The daemon (this process) on one core, the PBX child and Redis on the rest."""
    if daemon_cpu is None:
        return {"pinned": False}
    allowed = sorted(os.sched_getaffinity(0))
    if daemon_cpu not in allowed or len(allowed) < 2:
        raise SystemExit(f"--daemon-cpu {daemon_cpu}: needs two usable cores, have {allowed}")
    rest = set(allowed) - {daemon_cpu}
    moved = [pid for pid in others if pin(pid, rest)]
    pinned = pin(os.getpid(), {daemon_cpu})
    return {"pinned": pinned and len(moved) == len(others), "daemon_cpu": daemon_cpu,
            "others_cpus": sorted(rest),
            "daemon_affinity": sorted(os.sched_getaffinity(0))}


def redis_by_command(client: Any) -> dict[str, int]:
    clients = client if isinstance(client, list) else [client]  # a cluster: every master
    out: dict[str, int] = {}
    for c in clients:
        for k, v in c.info("commandstats").items():
            name = k.removeprefix("cmdstat_")
            out[name] = out.get(name, 0) + int(v["calls"])
    return out


def redis_reads(client: Any) -> int:
    """Reads Redis made from its clients' sockets (``INFO stats``): about one per round trip."""
    clients = client if isinstance(client, list) else [client]
    return sum(int(c.info("stats").get("total_reads_processed", 0)) for c in clients)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (the PBX child), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_steps(reactor: Any, args: argparse.Namespace, app: Any, parent: Connection,
                    sync_redis: Any, pbx_pid: int = 0, monitors: Any = None) -> list[dict[str, Any]]:
    from twisted.internet.task import deferLater

    agi_ms: list[float] = []
    routing_ms: list[float] = []
    queued: dict[str, float] = {}
    outcomes = [0]
    app.callflow.subscribe(lambda o: outcomes.__setitem__(0, outcomes[0] + 1))

    def on_routing(event: Any) -> None:
        kind = type(event).__name__
        if kind == "CallQueued":
            queued[event.call_id] = time.perf_counter()
        elif kind == "CallOffered" and event.call_id in queued:
            routing_ms.append((time.perf_counter() - queued.pop(event.call_id)) * 1000)

    app.dispatcher.subscribe(on_routing)
    gc_pauses: list[tuple[int, float]] = []  # (generation, ms) of each collection
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000))

    gc.callbacks.append(on_gc)
    ami_events = [0]
    real_agi = app.connection.agi

    def timed_agi(channel: str, command: str, **kw: Any) -> Any:
        d = real_agi(channel, command, **kw)
        if command.upper().startswith(PLAYING_VERBS):
            return d
        started = time.perf_counter()

        def done(result: Any) -> Any:
            agi_ms.append((time.perf_counter() - started) * 1000)
            return result

        return d.addBoth(done)

    app.connection.agi = timed_agi
    real_agi_reply: Any = getattr(app.connection, "agi_reply", None)

    def timed_agi_reply(channel: str, command: str, reply: Any, **kw: Any) -> Any:
        # the IVR's commands: a reply callable each, no Deferred (ivr.runner)
        if command.upper().startswith(PLAYING_VERBS):
            return real_agi_reply(channel, command, reply, **kw)
        started = time.perf_counter()

        def timed(outcome: Any) -> Any:
            agi_ms.append((time.perf_counter() - started) * 1000)
            return reply(outcome)

        return real_agi_reply(channel, command, timed, **kw)

    if real_agi_reply is not None:
        app.connection.agi_reply = timed_agi_reply
    await app.when_connected()
    # AMI events counted per read, on the protocol: an observer of every event
    # on the connection would have it hand over the events no one in the
    # daemon observes (its AsyncAGIExec, a third), which it does not.
    ami = app.connection.protocol
    dispatch_all = ami._dispatch_all

    def counted_dispatch_all(messages: list[Any]) -> None:
        ami_events[0] += len(messages) - [m.event for m in messages].count(None)
        dispatch_all(messages)

    ami._dispatch_all = counted_dispatch_all
    from benchmarks._loop_counts import LoopCounts

    loop_counts = LoopCounts(reactor, app.connection.protocol.transport)
    now = reactor.seconds()
    for agent in app.config.agents:
        app.roster.log_in(agent.id, now)
    if app.agent_stats is not None:
        # the start-up restore and the log-ins' ledger writes (about 5 Redis
        # commands per agent) are not the first step's calls
        await app.agent_stats.started
        await app.agent_stats.flushed()
    await deferLater(reactor, 1.0, lambda: None)
    steps: list[dict[str, Any]] = []
    profile = None
    if args.profile:
        from benchmarks._profiling import DaemonProfile

        profile = DaemonProfile(args.profiler, args.profile)
        profile.start()
    for rate in (float(r) for r in args.rates.split(",")):
        agi_ms.clear()
        routing_ms.clear()
        gc_pauses.clear()
        outcomes[0] = 0
        ami_events[0] = 0
        by_command0 = redis_by_command(sync_redis)
        reads0 = redis_reads(sync_redis)
        monitor_mark = monitors.mark() if monitors is not None else None
        loop_mark = loop_counts.mark()
        cpu0, sys0 = cpu_s(), sys_s()
        pbx0, started = process_cpu_s(pbx_pid), time.perf_counter()
        parent.send(("step", rate, args.step_s))
        placed = None
        waited = 0.0
        while waited < args.step_s + args.drain_s:
            await deferLater(reactor, 0.5, lambda: None)
            waited += 0.5
            while parent.poll():
                message = parent.recv()
                if message[0] == "placed":
                    placed = message[1]
            if placed is not None and outcomes[0] >= placed:
                break
        cpu, system = cpu_s() - cpu0, sys_s() - sys0
        pbx_cores = (process_cpu_s(pbx_pid) - pbx0) / max(1e-9, time.perf_counter() - started)
        by_command = redis_by_command(sync_redis)
        ours = 2 * (len(sync_redis) if isinstance(sync_redis, list) else 1)  # our INFOs on each server
        reads = redis_reads(sync_redis) - reads0 - ours
        by_command["info"] = by_command.get("info", 0) - ours
        spent = {k: n - by_command0.get(k, 0) for k, n in by_command.items()}
        commands = sum(spent.values())
        calls = max(1, placed or 0)
        step = {
            "calls_per_s": rate,
            "placed": placed,
            "accounted": outcomes[0],
            "daemon_cpu_ms_per_call": round(cpu * 1000 / calls, 2),
            "daemon_sys_ms_per_call": round(system * 1000 / calls, 2),
            "redis_commands_per_call": round(commands / calls, 1),
            "redis_reads_per_call": round(reads / calls, 2),
            "redis_per_call_by_command": {
                k: round(n / calls, 1)
                for k, n in sorted(spent.items(), key=lambda kv: -kv[1]) if n / calls >= 0.5
            },
            "ami_events_per_call": round(ami_events[0] / calls, 1),
            "loop_per_call": loop_counts.per_call(loop_mark, calls),
            "agi_ms": {"p50": pct(agi_ms, 0.5), "p99": pct(agi_ms, 0.99), "n": len(agi_ms)},
            "routing_ms": {"p50": pct(routing_ms, 0.5), "p99": pct(routing_ms, 0.99),
                           "n": len(routing_ms)},
            "gc": {
                "collections": [sum(1 for g, _ in gc_pauses if g == gen) for gen in range(3)],
                "total_ms": round(sum(ms for _, ms in gc_pauses), 1),
                "max_ms": round(max((ms for _, ms in gc_pauses), default=0.0), 1),
                "threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count(),
            },
            "rss_mb": rss_mb(),
            "pbx_cores": round(pbx_cores, 2),
            "seconds": round(waited, 1),
        }
        if monitors is not None:  # --by-kind (benchmarks/redis_kinds.py)
            from benchmarks.redis_kinds import per_call

            step["redis_per_call_by_kind"] = per_call(monitors.since(monitor_mark), calls)
        print(json.dumps(step), flush=True)
        steps.append(step)
        await deferLater(reactor, 2.0, lambda: None)  # the last calls' writes
    if profile is not None:
        text = profile.stop(sum(s["placed"] or 0 for s in steps), args.profile_top)
        print(text, file=sys.stderr, flush=True)
    return steps


def run(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing

    from shenava_base.aio import install_asyncio_reactor

    install_asyncio_reactor()  # redis.asyncio, as the daemon runs
    import redis
    from twisted.internet import reactor as global_reactor
    from twisted.internet.defer import ensureDeferred

    from shenava.app import Shenava
    from shenava.config import AgentConfig, default_config
    from shenava.redis_server import start_redis_server

    reactor: Any = global_reactor
    root = Path(tempfile.mkdtemp(prefix="shenava-bench-system-"))
    if args.cluster:
        from shenava.redis_cluster_server import start_redis_cluster

        server: Any = start_redis_cluster(root / "redis")
    else:
        server = start_redis_server(root / "redis")
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=pbx_child,
                       args=(child, args.agents, args.seed, args.prompt_s, str(root / "pbx"),
                             args.pbx_nodelay == "on",
                             None if args.manager_conf == "none" else str(SHIPPED_MANAGER_CONF)),
                       daemon=True)
    proc.start()
    out: dict[str, Any] = {}
    try:
        if not parent.poll(60):
            raise SystemExit("the test PBX child did not start")
        _, port = parent.recv()
        redis_pids = [node.process.pid for node in getattr(server, "nodes", [server])]
        pinning = pin_processes(args.daemon_cpu, [proc.pid or 0, *redis_pids])
        config = default_config()
        agents = tuple(
            AgentConfig(id=f"b{i}", name=f"Agent {i}", endpoint=f"PJSIP/{AGENT_BASE + i}",
                        languages=("fa", "en"))
            for i in range(args.agents)
        )
        config = replace(
            config,
            ami=replace(config.ami, host=HOST, port=port, secret=SECRET),
            redis=replace(config.redis, url=server.url),
            site=replace(config.site, id="bench" if args.cluster else ""),
            # Voicemails go where the test PBX writes RECORD FILE (its recordings root).
            recordings=replace(config.recordings, dir=root / "pbx" / "voicemail", asterisk_dir=None),
            state=replace(config.state, folder=str(root / "state")) if args.state_folder else config.state,
            agents=agents,
        )
        from shenava.redis_client import make_redis_client

        # the daemon's own client, as ``shenava run`` makes it: its bounded blocking
        # pool (``[redis] max_connections``) is part of what is measured
        client: Any = make_redis_client(config.redis)
        sync_redis: Any
        if args.cluster:
            sync_redis = [redis.Redis(host=h, port=p) for h, p in server.addresses]
        else:
            sync_redis = redis.Redis.from_url(server.url)
        monitors = None
        if args.by_kind:
            from benchmarks.redis_kinds import Monitors

            monitors = Monitors(server.addresses if args.cluster else [(HOST, server.port)], root)
        app = Shenava(config, reactor=reactor, redis=client)
        app.connection.tcp_no_delay = args.daemon_nodelay == "on"
        if args.read_pace_ms is not None:
            app.connection.read_pace_s = args.read_pace_ms / 1000.0
        app.start(serve_http=False)
        if args.gc_tuning == "on":  # as DaemonRun._lead does
            from shenava.daemon import tune_gc

            tune_gc(config.daemon.gc_gen0_threshold)
        result: dict[str, Any] = {}

        def finish(value: Any) -> Any:
            result["steps"] = value
            reactor.stop()

        def failed(failure: Any) -> None:
            result["error"] = failure.getTraceback()
            reactor.stop()

        reactor.callWhenRunning(lambda: ensureDeferred(
            run_steps(reactor, args, app, parent, sync_redis, proc.pid or 0, monitors)).addCallbacks(
                finish, failed))
        limit = len(args.rates.split(",")) * (args.step_s + args.drain_s + 5) + 60
        reactor.callLater(limit, reactor.stop)
        reactor.run()
        if monitors is not None:
            monitors.stop()
        if "error" in result:
            raise SystemExit(result["error"])
        steps = result.get("steps", [])
        sustained: list[float] = []
        for s in sorted(steps, key=lambda s: s["calls_per_s"]):
            if not (s["placed"] and s["accounted"] >= s["placed"]
                    and s["agi_ms"]["p99"] is not None and s["agi_ms"]["p99"] < 100):
                break  # sustained means this rate and every lower one
            sustained.append(s["calls_per_s"])
        at_50 = next((s for s in steps if s["calls_per_s"] == 50.0), None)
        out = {
            "bench": "system",
            "agents": args.agents,
            "redis": "cluster" if args.cluster else "server",
            "step_s": args.step_s,
            "prompt_s": args.prompt_s,
            "tcp_nodelay": {"daemon": args.daemon_nodelay, "pbx": args.pbx_nodelay},
            "read_pace_ms": round(app.connection.read_pace_s * 1000.0, 3),
            "manager_conf": args.manager_conf,
            "gc_tuning": args.gc_tuning,
            "state_folder": bool(args.state_folder),
            "pinning": pinning,
            "steps": steps,
            "max_sustained_calls_per_s": max(sustained, default=0.0),
            "daemon_cpu_ms_per_call": at_50 and at_50["daemon_cpu_ms_per_call"],
            "redis_commands_per_call": at_50 and at_50["redis_commands_per_call"],
            "agi_p99_ms_at_50": at_50 and at_50["agi_ms"]["p99"],
            "python": platform.python_version(),
        }
    finally:
        try:
            parent.send(("stop",))
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2,5,10", help="calls per second, one step each")
    parser.add_argument("--step-s", type=float, default=20.0)
    parser.add_argument("--drain-s", type=float, default=60.0)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--prompt-s", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="PATH", default=None,
                        help="profile the daemon over the steps: the raw profile here, its top "
                             "entries per call in PATH.top.txt and on stderr (slows it down)")
    parser.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile",
                        help="cprofile: exact call counts, dear per call; pyinstrument: "
                             "sampling, a truer split (pip install pyinstrument)")
    parser.add_argument("--profile-top", type=int, default=15, metavar="N",
                        help="entries in each of the two tables (self, cumulative)")
    parser.add_argument("--daemon-nodelay", choices=["on", "off"], default="on",
                        help="TCP_NODELAY on the daemon's AMI connection (off: as before)")
    parser.add_argument("--pbx-nodelay", choices=["on", "off"], default="on",
                        help="TCP_NODELAY on the test PBX's side (on: as Asterisk's manager)")
    parser.add_argument("--manager-conf", choices=["shipped", "none"], default="shipped",
                        help="the test PBX applies etc/asterisk/manager.conf's read classes and "
                             "event filters to the daemon's user (none: every event, as before)")
    parser.add_argument("--gc-tuning", choices=["on", "off"], default="on",
                        help="the daemon's gc.freeze and gen-0 threshold (off: Python's defaults)")
    parser.add_argument("--read-pace-ms", type=float, default=None,
                        help="[ami] read_pace_ms for the daemon (default: as configured, 0: read "
                             "as soon as anything arrives)")
    parser.add_argument("--daemon-cpu", type=int, default=None, metavar="N",
                        help="pin the daemon to core N, the test PBX and Redis to the others")
    parser.add_argument("--cluster", action="store_true",
                        help="a 3-master Redis Cluster on loopback, the daemon as site 'bench'")
    parser.add_argument("--state-folder", action="store_true",
                        help="the daemon's journal on disk in a state folder, as 'shenava run' "
                             "requires (default: in memory)")
    parser.add_argument("--by-kind", action="store_true",
                        help="Redis commands per call by command and key family, from redis-cli "
                             "MONITOR (benchmarks/redis_kinds.py; costs Redis some CPU)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
