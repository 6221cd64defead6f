"""End-to-end harness: the test PBX and the whole daemon on one virtual clock.

No sockets and no global reactor: the daemon's ``AMIConnection`` connects
through :class:`InMemoryPbxEndpoint`, which builds a test PBX server protocol
for each connection and links the two with ``twisted.test.iosim``. Time moves
only when a test says so, from one scheduled call to the next (a discrete
event simulation), with the bytes pumped both ways after every step, so a
whole call (IVR, hold, ringing, talk, wrap-up) takes milliseconds and runs the
same way every time.

Typical use::

    h = E2E.build(tmp_path)
    h.phone("PJSIP/101", PhoneScript(answer_after_s=2.0))
    h.log_in("a1")
    call = h.call(CallerScript(number="09121234567", answers=("1", "3")))
    h.run_until(lambda: h.outcome_of(call) is not None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect
from zope.interface import implementer

from agent_stats.roster import AgentChange
from agent_stats.states import AgentState, NotReadyReason
from ami_bridge.codec import AMIDecoder, Message
from ivr.machine import Outcome
from routing.dispatch import DispatchConfig
from routing.events import RoutingEvent
from routing.hold import HoldConfig
from shenava.app import Shenava
from shenava.check_config import ami_rights, manager_channelvars
from shenava.config import Config, default_config
from testpbx.options import PbxOptions
from testpbx.scripts import CallerScript, PhoneScript
from testpbx.server import AmiServerProtocol
from testpbx.world import CallHandle, PbxWorld

START_AT = 1_700_000_000.0  # a fixed epoch, so Uniqueids and logs repeat run to run
REDIS_WAIT_CAP_S = 10.0  # the longest real wait for the app's Redis commands between two steps
MAX_STEP_S = 0.25  # the longest jump of the clock between two looks at a predicate
DEFAULT_LIMIT_S = 600.0
SECRET = "e2e-secret"
SHIPPED_MANAGER_CONF = Path(__file__).resolve().parent.parent / "etc" / "asterisk" / "manager.conf"
"""The AMI user every end-to-end test logs in as: the shipped snippet's, with
its read/write classes and event filters applied by the test PBX."""


def e2e_config(**agent_overrides: Any) -> Config:
    """The demo config (agents a1..a4 on PJSIP/101..104) pointed at the in-memory PBX.

    Short reconnect delays keep the reconnect tests quick in virtual time.
    """
    config = default_config()
    ami = dataclasses.replace(
        config.ami, secret=SECRET, reconnect_initial_s=1.0, reconnect_max_s=5.0
    )
    agents = tuple(
        dataclasses.replace(agent, **agent_overrides.get(agent.id, {})) for agent in config.agents
    )
    return dataclasses.replace(config, ami=ami, agents=agents)


class _RecordingServer(AmiServerProtocol):
    """The test PBX's AMI session, noting every action the daemon sends it and
    every message it sends the daemon."""

    def __init__(
        self, world: PbxWorld, actions: list[tuple[float, Message]], sent: list[Message]
    ) -> None:
        super().__init__(world)
        self._actions = actions
        self._sent = sent
        self._sent_decoder = AMIDecoder(expect_banner=False)

    def _handle(self, msg: Message) -> None:
        self._actions.append((self.world.now(), msg))
        super()._handle(msg)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self._sent.extend(self._sent_decoder.feed(data))
        super()._write(data)


@implementer(IStreamClientEndpoint)
class InMemoryPbxEndpoint:
    """An ``IStreamClientEndpoint`` whose every connection reaches ``world``.

    ``refuse`` counts connection attempts to turn away (the PBX is "down").
    """

    def __init__(self, world: PbxWorld, clock: Clock) -> None:
        self.world = world
        self.clock = clock
        self.actions: list[tuple[float, Message]] = []
        self.sent: list[Message] = []
        self.pumps: list[IOPump] = []
        self.servers: list[AmiServerProtocol] = []
        self.attempts = 0
        self.refuse = 0

    def connect(self, factory: Any) -> Deferred[Any]:
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError("test PBX down"))
        client = factory.buildProtocol(None)
        server = _RecordingServer(self.world, self.actions, self.sent)
        pump = connect(
            server, FakeTransport(server, isServer=True),
            client, FakeTransport(client, isServer=False),
            greet=False, clock=self.clock,
        )
        self.pumps.append(pump)
        self.servers.append(server)
        return succeed(client)

    def live_pumps(self) -> list[IOPump]:
        self.pumps = [p for p in self.pumps if not p.clientIO.disconnected]
        return self.pumps

    def drop(self) -> None:
        """The TCP link breaks: both sides see the connection lost."""
        for pump in self.live_pumps():
            pump.serverIO.loseConnection()


class ProcessClock:
    """The clock one daemon sees: the shared ``task.Clock``, with every call it
    schedules noted, so :meth:`E2E.kill` can stop the daemon dead (as kill -9
    would: nothing of it runs again, nothing is said to anyone)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._calls: list[Any] = []
        self.dead = False

    def seconds(self) -> float:
        return self._clock.seconds()

    def callLater(self, delay: float, f: Callable[..., object], *a: object, **kw: object) -> Any:
        call = self._clock.callLater(delay, f, *a, **kw)
        if self.dead:
            call.cancel()
            return call
        self._calls = [c for c in self._calls if c.active()]
        self._calls.append(call)
        return call

    def getDelayedCalls(self) -> list[Any]:
        return [c for c in self._calls if c.active()]

    def kill(self) -> None:
        self.dead = True
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()


class E2E:
    """One PBX world and one daemon sharing a ``task.Clock``."""

    def __init__(
        self,
        clock: Clock,
        world: PbxWorld,
        endpoint: InMemoryPbxEndpoint,
        app: Shenava,
    ) -> None:
        self.clock = clock
        self.world = world
        self.endpoint = endpoint
        self.app = app
        self.outcomes: list[Outcome] = []
        self.routing: list[RoutingEvent] = []
        self.agent_changes: list[AgentChange] = []
        self.process_clock: ProcessClock | None = None
        self._names = iter(range(1, 1 << 30))
        self._watch(app)

    def _watch(self, app: Shenava) -> None:
        app.callflow.subscribe(self.outcomes.append)
        app.dispatcher.subscribe(self.routing.append)
        app.roster.subscribe(self.agent_changes.append)
        names = self._names
        # Deterministic recording names (the default is a random token).
        if app.recordings is None:
            # No voicemail store (no Redis): names that are easy to assert on.
            app.callflow.recording_name = lambda: f"shenava-vm/e2e-{next(names)}"

    def kill(self) -> None:
        """The daemon dies at once (kill -9): its timers never fire, its AMI link
        drops without a Logoff, nothing is flushed. Needs ``killable=True``."""
        assert self.process_clock is not None, "build(killable=True) to kill the daemon"
        self.process_clock.kill()
        # The PBX sees the socket close; the dead daemon learns nothing.
        for pump in self.endpoint.live_pumps():
            self.endpoint.pumps.remove(pump)
            pump.server.connectionLost(Failure(ConnectionDone("killed")))
        self.pump()

    def start_again(
        self, *, config: Config | None = None, dispatch: DispatchConfig | None = None,
        redis: Any | None = None,
    ) -> Shenava:
        """A new daemon against the same PBX (after :meth:`kill`), logged in and resynchronised."""
        self.process_clock = ProcessClock(self.clock)
        app = Shenava(
            config or self.app.config,
            reactor=self.process_clock,
            redis=redis,
            endpoint=self.endpoint,
            dispatch=dispatch or DispatchConfig(wrap_up_s=5.0, hold=HoldConfig(announce_every_s=30.0)),
        )
        self.app = app
        self._watch(app)
        app.start(serve_http=False)
        self.run_until(lambda: app.connection.protocol is not None, limit_s=30.0)
        return app

    @classmethod
    def build(
        cls,
        tmp_path: Path,
        *,
        config: Config | None = None,
        dispatch: DispatchConfig | None = None,
        redis: Any | None = None,
        connect: bool = True,
        pbx: PbxOptions | None = None,
        killable: bool = False,
    ) -> E2E:
        """A world and a started daemon, logged in and resynchronised.

        ``redis``: a ``redis.asyncio`` client makes the app install the stats,
        complaints and recordings wiring too (their Redis calls then need the
        real reactor to turn; see :meth:`run_until_async`).
        """
        config = config or e2e_config()
        clock = Clock()
        clock.advance(START_AT)
        options = pbx or PbxOptions(
            users={config.ami.username: config.ami.secret},
            rights={config.ami.username: ami_rights(SHIPPED_MANAGER_CONF, config.ami.username)},
            channelvars=manager_channelvars(SHIPPED_MANAGER_CONF),
            recordings_root=tmp_path / "recordings",
            support_context=config.site.support_context,
        )
        world = PbxWorld(cast(Any, clock), options)
        endpoint = InMemoryPbxEndpoint(world, clock)
        process_clock = ProcessClock(clock) if killable else None
        app = Shenava(
            config,
            reactor=process_clock or clock,
            redis=redis,
            endpoint=endpoint,
            dispatch=dispatch or DispatchConfig(
                wrap_up_s=5.0, hold=HoldConfig(announce_every_s=30.0)
            ),
        )
        harness = cls(clock, world, endpoint, app)
        harness.process_clock = process_clock
        if connect:
            app.start(serve_http=False)
            harness.run_until(lambda: app.connection.protocol is not None, limit_s=30.0)
        return harness

    # -- time ------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.seconds()

    def pump(self) -> None:
        """Move every byte in flight, and run what is due now, until quiet."""
        for _ in range(10_000):
            self.clock.advance(0)
            moved = False
            for pump in self.endpoint.live_pumps():
                if pump.pump(advanceClock=False):
                    moved = True
            if not moved:
                return
        raise AssertionError("the in-memory link never went quiet")

    def _step(self, until: float) -> None:
        """Advance to the next scheduled call (or ``until``), then pump."""
        self.pump()
        pending = [cast(Any, c).getTime() for c in self.clock.getDelayedCalls()]
        target = min([until, self.now + MAX_STEP_S, *[t for t in pending if t > self.now]])
        self.clock.advance(max(0.0, target - self.now))
        self.pump()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, everything running on time."""
        until = self.now + seconds
        while self.now < until:
            self._step(until)
        self.pump()

    def run_until(
        self, predicate: Callable[[], object], *, limit_s: float = DEFAULT_LIMIT_S
    ) -> None:
        """Advance until ``predicate()`` holds; fail after ``limit_s`` of virtual time."""
        deadline = self.now + limit_s
        self.pump()
        while not predicate():
            if self.now >= deadline:
                raise AssertionError(f"condition not met within {limit_s:g} s of virtual time")
            self._step(deadline)

    async def run_until_async(
        self, predicate: Callable[[], object], *, limit_s: float = DEFAULT_LIMIT_S,
        reactor: Any = None,
    ) -> None:
        """As :meth:`run_until`, giving the real reactor a turn after each step
        (for Redis calls made by the wiring modules when ``redis`` was given)."""
        from twisted.internet.task import deferLater

        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        deadline = self.now + limit_s
        self.pump()
        while not predicate():
            if self.now >= deadline:
                raise AssertionError(f"condition not met within {limit_s:g} s of virtual time")
            await deferLater(reactor, 0.001, lambda: None)
            # Virtual time must not run ahead of real Redis: while the app's
            # commands are still on the wire (a loaded machine, a small pool),
            # let them finish before the clock moves, as it would in real time.
            waited = 0.0
            while self._redis_busy() and waited < REDIS_WAIT_CAP_S:
                await deferLater(reactor, 0.005, lambda: None)
                waited += 0.005
            self._step(deadline)

    def _redis_busy(self) -> bool:
        """Whether the app's Redis client has a command in flight: a connection taken
        from its pool (one server), from a node's pool (a cluster: redis-py's
        ``ClusterNode`` keeps all its connections and the free ones), or a turn's
        batch not yet sent or still running (``shenava.redis_client``)."""
        client = self.app.redis
        if getattr(client, "_turn", None) is not None or getattr(client, "_batches", None):
            return True
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            return bool(getattr(pool, "_in_use_connections", None))
        get_nodes = getattr(client, "get_nodes", None)
        if get_nodes is None:
            return False
        return any(
            len(getattr(node, "_connections", ())) > len(getattr(node, "_free", ()))
            for node in get_nodes()
        )

    # -- the people -------------------------------------------------------------

    def phone(self, endpoint: str, script: PhoneScript) -> None:
        self.world.register_phone(endpoint, script)

    def phones(self, scripts: dict[str, PhoneScript]) -> None:
        for endpoint, script in scripts.items():
            self.phone(endpoint, script)

    def log_in(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            self.app.roster.log_in(agent_id, self.now)
        self.pump()

    def call(self, script: CallerScript) -> CallHandle:
        handle = self.world.place_call(script)
        self.pump()
        return handle

    def hang_up_at(self, call: CallHandle, prompt: str, *, limit_s: float = 120.0) -> None:
        """Hang the caller up as soon as the daemon starts ``prompt`` on their channel
        (before they type anything: a scripted answer comes ``answer_delay_s`` later)."""
        self.run_until(lambda: prompt in self.prompts(call), limit_s=limit_s)
        call.hang_up()
        self.pump()

    def queued(self, call: CallHandle, *, limit_s: float = 300.0) -> None:
        """Run until the caller has joined the waiting line."""
        from routing.events import CallQueued

        self.run_until(lambda: self.events(CallQueued, call), limit_s=limit_s)

    # -- what happened -------------------------------------------------------------

    def outcome_of(self, call: CallHandle) -> Outcome | None:
        for outcome in self.outcomes:
            if outcome.call_id == call.uniqueid:
                return outcome
        return None

    def wait_outcome(self, call: CallHandle, *, limit_s: float = 300.0) -> Outcome:
        self.run_until(lambda: self.outcome_of(call) is not None, limit_s=limit_s)
        outcome = self.outcome_of(call)
        assert outcome is not None
        return outcome

    def events(self, kind: type[RoutingEvent], call: CallHandle | None = None) -> list[Any]:
        return [
            e for e in self.routing
            if isinstance(e, kind) and (call is None or e.call_id == call.uniqueid)
        ]

    def agi_commands(self, call: CallHandle) -> list[str]:
        """Every AGI command the daemon sent for this caller's channel, in order."""
        name = call.agi_channel.name
        return [
            msg.get("Command") or ""
            for _, msg in self.endpoint.actions
            if (msg.get("Action") or "").lower() == "agi" and msg.get("Channel") == name
        ]

    def prompts(self, call: CallHandle) -> list[str]:
        """The sound files played or used as prompts on this caller's channel
        (without the folder: ``welcome``, also for ``fa/shenava/welcome``)."""
        found = []
        languages = self.world.options.sound_languages
        for command in self.agi_commands(call):
            verb = command.split(" ", 2)
            if verb[:2] in (["STREAM", "FILE"], ["GET", "DATA"]) and len(verb) > 2:
                name = verb[2].split(" ", 1)[0]
                folder, _, rest = name.partition("/")
                if folder in languages and "/" in rest:  # a bilingual prompt: fa/shenava/welcome
                    name = rest
                found.append(name.removeprefix("shenava/"))
        return found

    def heard(self, call: CallHandle) -> list[str]:
        """The sound files the caller heard, as Asterisk finds them by the
        channel's language (``testpbx.agi_commands.heard_as``): ``fa/shenava/welcome``."""
        return list(call.agi_channel.heard)

    def actions(self, name: str) -> list[Message]:
        return [m for _, m in self.endpoint.actions if (m.get("Action") or "").lower() == name.lower()]

    def server_sent(self) -> list[Message]:
        """Every message the test PBX sent the daemon (responses and events), in order."""
        return list(self.endpoint.sent)

    def state(self, agent_id: str) -> AgentState:
        return self.app.roster.get(agent_id).state

    def reason(self, agent_id: str) -> NotReadyReason | None:
        return self.app.roster.get(agent_id).reason

    def alive(self, call: CallHandle) -> bool:
        """The caller is still on the line (their IVR channel exists on the PBX)."""
        return self.world.find(call.agi_channel.name) is not None

    # -- the AMI link -----------------------------------------------------------------

    def drop_link(self, *, refuse: int = 0) -> None:
        """Break the daemon's AMI connection; the next ``refuse`` reconnects fail."""
        self.endpoint.refuse = refuse
        self.endpoint.drop()
        self.pump()
        assert self.app.connection.protocol is None

    def wait_reconnected(self, *, limit_s: float = 60.0) -> None:
        """Run until the daemon is logged in again and resynchronised."""
        self.run_until(lambda: self.app.connection.protocol is not None, limit_s=limit_s)

    def stop(self) -> None:
        # Nothing this test's daemon writes may reach the next test's Redis.
        recorder = getattr(self.app.takeover, "recorder", None)
        if recorder is not None:
            recorder.stop()
        d = self.app.stop()
        self.pump()
        self.endpoint.drop()
        self.pump()
        d.addErrback(lambda _: None)


__all__ = ["E2E", "InMemoryPbxEndpoint", "e2e_config"]
