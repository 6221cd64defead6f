"""``shenava demo``: the whole system on one machine, with no Asterisk.

It starts (unless configured otherwise) its own ``redis-server`` on a free
port, the test PBX on a free loopback port with the agents' phones of the
config, the daemon connected to it, and a stream of simulated callers with a
seeded random mix of languages, menu paths and patience. Simulated agents log
in, take calls, and come back after a missed call. Live figures are printed
every few seconds; at the end a summary (``--json``: one JSON object as the
last line). At start it prints the URLs of the wallboard and an agent desk,
served through a stand-in for the operator's proxy (docs/wallboard.md).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger, LogLevel

from agent_stats.demo_figures import simulate_breaks
from agent_stats.demo_figures import summary as stats_summary
from agent_stats.roster import AgentChange
from agent_stats.states import AgentState, NotReadyReason
from ivr.machine import Outcome
from recordings.wiring import summary as voicemail_summary
from routing.calls import QUEUE
from shenava.app import Shenava
from shenava.config import Config
from shenava.http.demo_door import make_demo_users, sign_in_links
from shenava.routing_log import RoutingLog
from testpbx.audio import SAMPLE_RECORDING
from testpbx.options import PbxOptions
from testpbx.scripts import AfterSpeaking, CallerScript, PhoneMode, PhoneScript
from testpbx.server import listen_testpbx, port_number
from testpbx.world import PbxWorld

log = Logger()

LIVE_EVERY_S = 5.0
SETTLE_S = 0.5
IMPATIENT_SHARE = 0.2
MISSED_BACK_AFTER_S = 20.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 60.0
    calls_per_minute: float = 6.0
    seed: int = 1
    json: bool = False
    quiet: bool = False
    http_port: int = 0
    """The daemon's HTTP listener (0: any free port)."""
    ui_port: int = 0
    """The stand-in proxy for the browser pages (0: any free port)."""
    log_format: str = "text"


def luhn_complete(digits: str) -> str:
    """``digits`` with a Luhn check digit appended (the default menus check it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


class CallerMix:
    """Seeded random callers that walk the default menus."""

    def __init__(self, rng: random.Random, audio: Path | None) -> None:
        self._rng = rng
        self._audio = audio
        self._n = 0

    def next(self) -> CallerScript:
        rng = self._rng
        self._n += 1
        lang = rng.choices(["fa", "en"], weights=[3, 1])[0]
        lang_key = "1" if lang == "fa" else "2"
        number = "0912" + "".join(rng.choice("0123456789") for _ in range(7))
        path = rng.choices(
            ["complaint", "agent", "status", "voicemail", "callback"], weights=[55, 20, 10, 10, 5]
        )[0]
        if self._n == 1 and self._audio is not None:
            # The first caller leaves a voicemail: the register has a complaint with a
            # recording to play (docs/wallboard.md, the review page) within a minute.
            path = "voicemail"
        answers: list[str]
        if path == "complaint":
            account = luhn_complete("".join(rng.choice("0123456789") for _ in range(9)))
            answers = [
                lang_key, "1", str(rng.randint(1, 6)), rng.choice(["1", "2", "2"]),
                rng.choice(["3", "3", "3", "1", "2"]), account + "#", "1",
            ]
        elif path == "agent":
            answers = [lang_key, "3"]
        elif path == "status":
            answers = [lang_key, "2", "".join(rng.choice("0123456789") for _ in range(7)) + "#", "1", ""]
        elif path == "voicemail":
            answers = [lang_key, "4"]
        else:
            answers = [lang_key, "5", "1"]
        if path in ("complaint", "agent") and rng.random() < 0.1:
            answers.append("1")  # while holding: keep my place, call me back
        return CallerScript(
            number=number,
            name=f"Caller {self._n}",
            language=lang,
            answers=tuple(answers),
            answer_delay_s=rng.uniform(0.5, 2.0),
            audio=self._audio if path == "voicemail" else None,
            after_speaking=AfterSpeaking.PRESS_HASH,
            # Most callers wait a few minutes; some give up soon (they become
            # callback flags if they waited past the short-abandon threshold).
            patience_s=rng.uniform(25.0, 45.0) if rng.random() < IMPATIENT_SHARE
            else rng.uniform(60.0, 240.0),
        )


def phone_scripts(config: Config, rng: random.Random) -> dict[str, PhoneScript]:
    """One phone per configured agent; the last one is away from its desk at first."""
    phones: dict[str, PhoneScript] = {}
    for i, agent in enumerate(config.agents):
        if i == len(config.agents) - 1 and len(config.agents) > 1:
            phones[agent.endpoint] = PhoneScript(mode=PhoneMode.NO_ANSWER)
        else:
            phones[agent.endpoint] = PhoneScript(
                answer_after_s=rng.uniform(1.5, 4.0), talk_s=rng.uniform(25.0, 50.0)
            )
    return phones


def run_demo(config: Config, options: DemoOptions) -> int:
    from shenava.logs import start_logging
    from shenava_base.aio import install_asyncio_reactor

    reactor = install_asyncio_reactor(config.daemon.event_loop)
    level = start_logging(
        config.log.level if not options.json else "warn", stream=sys.stderr,
        fmt=options.log_format,
    )
    outcome: dict[str, Any] = {}

    def finished(result: object) -> None:
        outcome["result"] = result
        reactor.stop()

    reactor.callWhenRunning(
        lambda: ensureDeferred(_demo(reactor, config, options, level)).addBoth(finished)
    )
    reactor.run()
    result = outcome.get("result")
    if isinstance(result, dict):
        _print_summary(result, options)
        return 0
    if hasattr(result, "getTraceback"):
        print(f"shenava demo failed: {result.getErrorMessage()}", file=sys.stderr)  # type: ignore[union-attr]
        print(result.getTraceback(), file=sys.stderr)  # type: ignore[union-attr]
    return 1


async def _demo(
    reactor: Any, config: Config, options: DemoOptions, level: Any = None
) -> dict[str, Any]:
    from shenava.redis_client import make_redis_client
    from shenava.redis_server import start_redis_server
    from shenava_base.aio import as_deferred

    rng = random.Random(options.seed)
    workdir = Path(tempfile.mkdtemp(prefix="shenava-demo-"))
    redis_server = None
    url = config.redis.url
    if not url:
        redis_server = start_redis_server(workdir / "redis")
        url = redis_server.url
    client = make_redis_client(config.redis, url=url)
    world = PbxWorld(
        reactor,
        PbxOptions(
            users={config.ami.username: config.ami.secret},
            recordings_root=workdir / "recordings",
            support_context=config.site.support_context,
            seed=options.seed,
            # as Asterisk with the shipped manager.conf: AsyncAGIStart carries
            # the dialplan's language (no GET VARIABLE per caller)
            channelvars=("SHENAVA_LANG",),
        ),
    )
    phones = phone_scripts(config, rng)
    for endpoint, script in phones.items():
        world.register_phone(endpoint, script)
    port = listen_testpbx(reactor, 0, world, interface="127.0.0.1")
    pbx_port = port_number(port)
    # Voicemails go where the test PBX writes RECORD FILE (its sounds dir).
    voicemail_dir = workdir / "recordings" / "voicemail"
    demo_config = replace(
        config,
        ami=replace(config.ami, host="127.0.0.1", port=pbx_port),
        recordings=replace(config.recordings, dir=voicemail_dir, asterisk_dir=None),
        # The demo's people sign in like anyone (shenava.http.demo_door makes them).
        http=replace(config.http, users_file=str(workdir / "users.json")),
        # A state folder of the demo's own (unless the config gives one): its
        # journal and reference blocks on disk as on a real site, and no
        # "state.folder is not set" warning to puzzle whoever tries the demo.
        state=config.state if config.state.folder else replace(config.state, folder=str(workdir / "state")),
    )
    app = Shenava(
        demo_config,
        reactor=reactor,
        redis=client,
    )
    requests: Counter[str] = Counter()
    app.callflow.subscribe(lambda o: requests.update([_request_of(o)]))
    RoutingLog().attach(app.dispatcher, app.tracker)
    _simulate_agents(reactor, app, world, phones)
    started = reactor.seconds()
    calls: list[Any] = []
    summarised = False
    try:
        # Inside the try: a port given with --http-port may be taken.
        app.start(http_port=options.http_port)
        people = make_demo_users(workdir / "users.json", [a.id for a in config.agents], time.time())
        await app.when_connected()
        _print_urls(app, people, options)
        for agent in config.agents:
            app.roster.log_in(agent.id, reactor.seconds())
        simulate_breaks(reactor, app, random.Random(options.seed + 1))
        audio = SAMPLE_RECORDING if SAMPLE_RECORDING.exists() else None
        mix = CallerMix(rng, audio)
        placed = [0]
        rate_per_s = max(options.calls_per_minute, 0.01) / 60.0

        def place() -> None:
            if reactor.seconds() - started >= options.duration_s:
                return
            script = mix.next()
            # The caller's own phone, for when Shenava calls them back.
            world.register_phone(
                f"PJSIP/{script.number}",
                PhoneScript(answer_after_s=rng.uniform(2.0, 6.0), talk_s=rng.uniform(10.0, 30.0))
                if rng.random() < 0.8 else PhoneScript(mode=PhoneMode.NO_ANSWER),
            )
            calls.append(world.place_call(script))
            placed[0] += 1
            reactor.callLater(rng.expovariate(rate_per_s), place)

        reactor.callLater(min(1.0, rng.expovariate(rate_per_s)), place)
        live = LoopingCall(lambda: _print_live(reactor, started, app, placed[0], options))
        live.clock = reactor
        if not options.quiet and not options.json:
            live.start(LIVE_EVERY_S, now=False)
        await deferLater(reactor, options.duration_s, lambda: None)
        if live.running:
            live.stop()
        if app.live_writer is not None:
            await app.live_writer.flushed()  # written once per tick
        snapshot = await as_deferred(app.live.snapshot(reactor.seconds())) if app.live else None
        result = _summary(app, placed[0], requests, snapshot, options, redis_server is not None)
        result["statistics"] = stats_summary(app)
        result["callbacks"] = await _callbacks_summary(app, reactor.seconds())
        result["voicemail"] = await as_deferred(voicemail_summary(app))
        summarised = True
        return result
    finally:
        if level is not None and summarised:
            # The figures are taken: what the simulation's end sets off (callers
            # cut off mid-prompt) is not news, only errors are.
            level.defaultLogLevel = LogLevel.error
            level.clearLogLevels()
        # Closing time: the callers still on the line hang up, and the daemon
        # sees them go before it stops (no AGI command cut off mid-way).
        for call in calls:
            call.hang_up()  # nothing for a call already ended
        await deferLater(reactor, SETTLE_S, lambda: None)
        await app.stop()
        await maybeDeferred(port.stopListening)
        # Let what the stop set off (IVR outcomes of callers cut off, the last
        # statistics) reach Redis before it goes.
        await deferLater(reactor, SETTLE_S, lambda: None)
        await as_deferred(client.aclose())
        if redis_server is not None:
            redis_server.stop()


def _print_urls(app: Shenava, people: list[Any], options: DemoOptions) -> None:
    """The API's URL, one-use sign-in links to the pages, and the demo's credentials
    (docs/wallboard.md). With ``--json`` they go to stderr: stdout keeps the JSON line."""
    http = app.http_port.getHost()
    base = f"http://{http.host}:{http.port}"
    links = sign_in_links(app, people)
    supervisor, agents = people[0], people[1:]
    # The first link opened is the one that signs in: the API answers 401 to a browser
    # that has not signed in, so it comes last, for after the links above.
    lines = [f"Wallboard: {base}/{links[supervisor.name]}  (signs in as {supervisor.name}; one use)"]
    if agents:
        lines.append(f"Agent desk: {base}/{links[agents[0].name]}  (signs in as {agents[0].name}; one use)")
    lines.append(f"Sign-in page: {base}/sign-in  ({supervisor.name} / {supervisor.secret}; "
                 + ", ".join(f"{a.name} PIN {a.secret}" for a in agents) + ")")
    if not options.json:
        lines.append(f"HTTP API: {base}/api/agents  (once signed in, in the same browser; docs/api.md)")
    print("\n".join(lines), file=sys.stderr if options.json else sys.stdout, flush=True)


async def _callbacks_summary(app: Shenava, now: float) -> dict[str, Any]:
    """Callback flags raised (abandons, IVR and hold requests, voicemails) and their fate."""
    from shenava_base.aio import as_deferred

    complaints = app.complaints
    if complaints is None:
        return {"available": False}
    store = complaints.callbacks
    open_flags = await as_deferred(store.open_flags())
    attention = await as_deferred(store.needing_attention())
    closed = await as_deferred(store.closed_between(0.0, now + 1.0))
    attempts = sum(len(flag.attempts) for flag in (*open_flags, *closed))
    return {
        "open": len(open_flags),
        "closed": len(closed),
        "needing_attention": len(attention),
        "attempts": attempts,
        "outcomes": dict(Counter(a.outcome.value for f in (*open_flags, *closed) for a in f.attempts
                                 if a.outcome is not None)),
    }


def _request_of(outcome: Outcome) -> str:
    return str(outcome.requested.value if hasattr(outcome.requested, "value") else outcome.requested)


def _simulate_agents(
    reactor: Any, app: Shenava, world: PbxWorld, phones: dict[str, PhoneScript]
) -> None:
    """Simulated people: after a missed call they come back, with their phone answering."""

    def on_change(change: AgentChange) -> None:
        if change.new is AgentState.NOT_READY and change.new_reason is NotReadyReason.MISSED:
            status = app.roster.get(change.agent_id)
            endpoint = status.profile.endpoint
            if phones.get(endpoint, PhoneScript()).mode is PhoneMode.NO_ANSWER:
                fixed = PhoneScript(answer_after_s=3.0, talk_s=35.0)
                phones[endpoint] = fixed
                world.register_phone(endpoint, fixed)

            def back() -> None:
                if app.roster.get(change.agent_id).state is AgentState.NOT_READY:
                    app.roster.set_ready(change.agent_id, reactor.seconds())

            reactor.callLater(MISSED_BACK_AFTER_S, back)

    app.roster.subscribe(on_change)


def _agents_line(app: Shenava) -> str:
    states = Counter(status.state.value for status in app.roster)
    return ", ".join(f"{name} {count}" for name, count in sorted(states.items()))


def _print_live(reactor: Any, started: float, app: Shenava, placed: int, options: DemoOptions) -> None:
    c = app.counts
    print(
        f"[{reactor.seconds() - started:5.0f}s] callers {placed:3d} | in progress {c.in_progress:2d}"
        f" | in IVR {app.callflow.in_ivr:2d} | waiting {app.dispatcher.waiting:2d}"
        f" | answered {c.answered:3d} | abandoned {c.abandoned:3d} | agents: {_agents_line(app)}",
        flush=True,
    )


def _summary(
    app: Shenava,
    placed: int,
    requests: Counter[str],
    snapshot: Any,
    options: DemoOptions,
    own_redis: bool,
) -> dict[str, Any]:
    c = app.counts
    waits = c.waits_answered

    def stat(values: Any, fn: Any) -> float | None:
        return round(fn(values), 1) if values else None

    day = snapshot.queue(QUEUE) if snapshot is not None else None
    return {
        "bench": "demo",
        "duration_s": options.duration_s,
        "seed": options.seed,
        "callers_placed": placed,
        "calls_arrived": c.arrived,
        "calls_in_progress": c.in_progress,
        "ivr_outcomes": dict(sorted(requests.items())),
        "offered": c.queued,
        "answered": c.answered,
        "abandoned": c.abandoned,
        "waiting_now": app.dispatcher.waiting,
        "wait_answered_avg_s": stat(waits, statistics.fmean),
        "wait_answered_max_s": stat(waits, max),
        "wait_abandoned_avg_s": stat(c.waits_abandoned, statistics.fmean),
        "agents": {s.profile.agent_id: s.state.value for s in app.roster},
        "redis": "embedded redis-server" if own_redis else "configured",
        # What the wallboard reads from Redis (the same calls as above when the
        # demo's own Redis starts empty).
        "redis_day_figures": (
            {"answered": day.answered, "abandoned": day.abandoned, "in_progress": day.in_progress}
            if day is not None else None
        ),
    }


def _print_summary(summary: dict[str, Any], options: DemoOptions) -> None:
    if not options.json:
        print()
        print("\n".join(explain_summary(summary)))
    print(json.dumps(summary, ensure_ascii=False))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def explain_summary(summary: dict[str, Any]) -> list[str]:
    """The summary in words: each figure once, named, with what it counts."""
    lines = [f"Shenava demo summary ({summary['duration_s']:g} s, seed {summary['seed']}, "
             f"{summary['redis']})"]
    outcomes = ", ".join(f"{k} {v}" for k, v in summary["ivr_outcomes"].items()) or "none yet"
    lines.append(f"  Callers: {summary['callers_placed']} placed, {summary['calls_arrived']} "
                 f"reached the IVR, {summary['calls_in_progress']} still on the line at the end")
    lines.append(f"  IVR choices: {outcomes}")
    lines.append(f"  Waiting line: {summary['offered']} offered (joined the line), "
                 f"{summary['answered']} answered, {summary['abandoned']} abandoned, "
                 f"{summary['waiting_now']} waiting at the end")
    lines.append(f"  Wait until answer: mean {_s(summary['wait_answered_avg_s'])}, longest "
                 f"{_s(summary['wait_answered_max_s'])}; callers who gave up had waited "
                 f"{_s(summary['wait_abandoned_avg_s'])} on average")
    stats = summary.get("statistics") or {}
    sl = stats.get("service_level")
    if sl:
        t, short = sl["threshold_s"], sl["short_abandon_s"]
        lines.append(f"  Service level (threshold {t:g} s; abandons under {short:g} s are not "
                     f"counted, {sl['abandoned_short_not_counted']} here; target "
                     f"{_pct(sl['target'])}):")
        lines.append(f"    SL  {_pct(sl['sl']):>7}  answered within {t:g} s over answered + "
                     f"abandoned ({sl['answered_in_threshold']} of {sl['counted']})")
        lines.append(f"    SL1 {_pct(sl['app_queue_servicelevel_perf']):>7}  Asterisk app_queue's "
                     "ServicelevelPerf: answered within the threshold over answered")
        lines.append(f"    SL2 {_pct(sl['app_queue_servicelevel_perf2']):>7}  Asterisk "
                     "app_queue's ServicelevelPerf2: abandons within the threshold count as "
                     "met")
    breaks = stats.get("breaks")
    if breaks:
        by = ", ".join(f"{k} {v}" for k, v in sorted(breaks["granted_by_reason"].items()))
        lines.append(f"  Breaks: {breaks['granted']} granted ({by or 'none'}), "
                     f"{breaks['waited_for_headroom']} waited for headroom (longest "
                     f"{_s(breaks['wait_max_s'])}), {breaks['line_now']} in the line at the end")
        lines.append(f"  Break fairness: {breaks['fairness_index']:.2f} on a 0-1 scale "
                     "(Jain's index of break time taken over earned; 1: all agents alike)")
        lines.append(f"  Wellbeing alerts: {stats.get('wellbeing_alerts', 0)}")
    callbacks = summary.get("callbacks") or {}
    if "open" in callbacks:
        lines.append(f"  Callback flags: {callbacks['open']} open, {callbacks['closed']} closed, "
                     f"{callbacks['attempts']} dial attempts")
    voicemail = summary.get("voicemail") or {}
    if "recorded" in voicemail:
        lines.append(f"  Voicemail: {voicemail['recorded']} recorded, {voicemail['pending']} "
                     "waiting for transcription (the demo runs no worker)")
    agents = ", ".join(f"{a} {s}" for a, s in summary["agents"].items())
    lines.append(f"  Agents at the end: {agents}")
    lines.append("  The JSON line below has every figure.")
    return lines


__all__ = ["DemoOptions", "run_demo", "Deferred"]
