"""The composition root: every long-lived object of the daemon, built once.

Nothing here decides anything; it wires constructors together so that each
piece can be tested alone with a ``task.Clock`` and a fake AMI link, and the
daemon, the demo and the integration tests all run the same graph.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from agent_stats.centre import CentreBoard
from agent_stats.roster import AgentProfile, AgentRoster
from agent_stats.service import StatsService
from ami_bridge.connection import AMIConnection, AMICredentials
from ami_bridge.events import AgiSessionStarted, ChannelAdopted, ChannelHungUp, TrackerEvent
from ami_bridge.tracker import CallTracker, attach_tracker, handles
from complaints.wiring import ComplaintsExtension
from ivr.machine import MenuMachine
from recordings.wiring import RecordingsHandle
from routing.calls import QUEUE
from routing.channel_ids import ChannelIds, new_run_token
from routing.dispatch import LEG_PREFIX, CallDispatcher, DispatchConfig
from routing.events import CallAbandoned, CallAnswered, CallQueued, RoutingEvent
from routing.router import Router
from shenava.callflow import CallFlow
from shenava.config import Config
from shenava.http.server import HttpApi
from shenava.journal import Journal
from shenava.live_store import LiveFiguresStore
from shenava.takeover import CallStateExtension

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = Logger()

WAITS_KEPT = 10_000
"""Waits the run's figures keep (the latest): keeping every one grew forever."""


def _waits() -> deque[float]:
    return deque(maxlen=WAITS_KEPT)


@dataclass(slots=True)
class CallCounts:
    """In-memory figures of this run (the demo prints them; Redis keeps the day's)."""

    arrived: int = 0
    adopted: int = 0
    ended: int = 0
    callers: set[str] = field(default_factory=set)
    queued: int = 0
    answered: int = 0
    abandoned: int = 0
    waits_answered: deque[float] = field(default_factory=_waits)
    waits_abandoned: deque[float] = field(default_factory=_waits)

    @property
    def in_progress(self) -> int:
        return len(self.callers)


class _Stoppable(Protocol):
    def stop(self) -> object: ...


class Shenava:
    """The daemon's object graph."""

    def __init__(
        self,
        config: Config,
        *,
        reactor: Any,
        redis: Redis | None,
        endpoint: IStreamClientEndpoint | None = None,
        dispatch: DispatchConfig | None = None,
        connection: AMIConnection | None = None,
        run_token: str | None = None,
        fence: Callable[[], str | None] | None = None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        # "leader" or "standby" (shenava.daemon sets it for a pair; alone, always the leader)
        self.role: Callable[[], str] = lambda: "leader"
        # The leader lease's fencing value, checked by Redis on every call-state
        # write (None: no lease, a daemon alone without a pair).
        self.fence: Callable[[], str | None] | None = fence
        now = reactor.seconds()
        ami = config.ami
        # One random token per run: in ActionIDs/CommandIDs and in the
        # ChannelIds of originated legs, so nothing of an earlier run (or of
        # the other daemon of a pair) is ever taken for this run's.
        self.run_token = run_token or new_run_token()
        # A standby that became the leader hands over its warm AMI link.
        self.connection = connection or make_connection(config, reactor, self.run_token, endpoint)
        self.tracker = CallTracker(max_channels=ami.max_channels)
        attach_tracker(self.tracker, self.connection, reactor)
        self.roster = AgentRoster(
            (
                AgentProfile(a.id, a.name, a.endpoint, a.languages, a.skills, a.experienced)
                for a in config.agents
            ),
            now,
        )
        self.router = Router(
            config.routing.scoring, config.routing.selection,
            decision_history=config.routing.decision_history,
        )
        self.dispatcher = CallDispatcher(
            ami=self.connection,
            tracker=self.tracker,
            roster=self.roster,
            router=self.router,
            clock=reactor,
            config=_with_sound_folder(dispatch or config.routing.dispatch, config.ivr.sound_folder),
            channel_ids=ChannelIds(LEG_PREFIX, self.run_token),
        )
        self.menus = config.ivr.menus
        self.callflow = CallFlow(
            ami=self.connection,
            tracker=self.tracker,
            clock=reactor,
            machine=MenuMachine(self.menus),
            dispatcher=self.dispatcher,
            support_context=config.site.support_context,
        )
        self.redis = redis
        self.callflow.sound_folder = config.ivr.sound_folder
        self.counts = CallCounts()
        self.live = (
            LiveFiguresStore(redis, config.redis.key_prefix, tz=config.site.tzinfo, site=config.site.id)
            if redis is not None
            else None
        )
        from shenava.live_writer import LiveFiguresWriter

        self.live_writer = LiveFiguresWriter(self.live, reactor) if self.live is not None else None
        """The live figures written once per tick (``live`` stays the store, for reading)."""
        self.tracker.subscribe(self._count_calls)
        self.dispatcher.subscribe(self._count_routing)
        # What each package adds to the graph: its storage, its subscriptions
        # to the events above, its hooks into the call flow. Each ``install``
        # only adds; the order matters where one uses another's hook. Without
        # Redis (unit tests) only the HTTP API is installed.
        self.journal: Journal | None = None
        self.agent_stats: StatsService | None = None
        self.complaints: ComplaintsExtension | None = None
        self.recordings: RecordingsHandle | None = None
        self.takeover: CallStateExtension | None = None
        self.centre: CentreBoard | None = None
        """Every site's figures and their sum (agent_stats.centre, shenava_base.sites)."""
        self.http: HttpApi | None = None
        if redis is not None:
            from shenava.journal import install as install_journal

            # First: the packages below register what they keep in it.
            self.journal = install_journal(self)
            from agent_stats.wiring import install as install_stats
            from complaints.wiring import install as install_complaints
            from recordings.wiring import install as install_recordings

            self.agent_stats = install_stats(self)
            from agent_stats.centre import install as install_centre

            self.centre = install_centre(self)  # every site's figures (shenava_base.sites)
            self.complaints = install_complaints(self)
            self.recordings = install_recordings(self)
            from shenava.takeover import install as install_takeover

            self.takeover = install_takeover(self)
            if self.recordings is not None:
                # Retention: purging a closed complaint deletes its recordings.
                self.complaints.register.set_delete_recording(self.recordings.delete_recording)
        from shenava.http import install as install_http

        self.http = install_http(self)
        self.http_port: Any = None

    # -- life cycle ----------------------------------------------------------

    def start(self, *, serve_http: bool = True, http_port: int | None = None) -> None:
        """Connect to Asterisk and serve the HTTP API (``http_port=0``: any free port)."""
        from shenava.http import start_http

        if not self.connection.running:
            self.connection.startService()
        if serve_http:
            self.http_port = start_http(self, port=http_port)

    async def _stop(self) -> None:
        # Extensions first (a final heartbeat of the ledger, the last counters),
        # then the HTTP API, then the AMI link.
        # The statistics writer drains first, then the call state is written
        # (the next daemon takes the callers over from it), then the journal.
        if self.live_writer is not None:
            await self.live_writer.stop()
        handles: tuple[tuple[str, _Stoppable | None], ...] = (
            ("recordings", self.recordings), ("complaints", self.complaints),
            ("agent_stats", self.agent_stats), ("centre", self.centre), ("takeover", self.takeover),
            ("journal", self.journal), ("http", self.http),
        )
        for name, handle in handles:
            if handle is None:
                continue
            stop = handle.stop
            try:
                result = stop()
                if isinstance(result, Deferred):
                    await result
            except CancelledError:
                raise  # the stop's time is up (shenava.daemon): nothing more is tried
            except Exception:
                log.failure("stopping {name} failed", name=name)
        if self.http_port is not None:
            port, self.http_port = self.http_port, None
            await port.stopListening()
        await self.connection.stopService()

    def stop(self) -> Deferred[None]:
        return ensureDeferred(self._stop())

    def when_connected(self) -> Deferred[Any]:
        return self.connection.when_connected()

    # -- figures -------------------------------------------------------------

    @handles(AgiSessionStarted, ChannelAdopted, ChannelHungUp)
    def _count_calls(self, event: TrackerEvent) -> None:
        """Callers on the support line: from their AsyncAGI start to their hang-up.

        A resync after a reconnect adopts callers already there (``adopted``),
        so a call is never counted twice nor lost.
        """
        counts = self.counts
        support = self.config.site.support_context
        if isinstance(event, AgiSessionStarted):
            if event.env.get("agi_context") != support or event.uniqueid in counts.callers:
                return
            counts.arrived += 1
            counts.callers.add(event.uniqueid)
        elif isinstance(event, ChannelAdopted):
            channel = self.tracker.channel(event.uniqueid)
            if channel is None or channel.context != support or event.uniqueid in counts.callers:
                return
            counts.adopted += 1
            counts.callers.add(event.uniqueid)
        elif isinstance(event, ChannelHungUp):
            if event.uniqueid not in counts.callers:
                return
            counts.callers.discard(event.uniqueid)
            counts.ended += 1
        else:
            return
        if self.live_writer is not None:
            self.live_writer.set_in_progress({QUEUE: counts.in_progress})

    def _count_routing(self, event: RoutingEvent) -> None:
        counts = self.counts
        live = self.live_writer
        if isinstance(event, CallQueued):
            counts.queued += 1
            if live is not None:
                live.call_offered(QUEUE, event.at)
        elif isinstance(event, CallAnswered):
            counts.answered += 1
            counts.waits_answered.append(event.at - event.joined_at)
            if live is not None:
                live.call_answered(QUEUE, event.at)
        elif isinstance(event, CallAbandoned):
            counts.abandoned += 1
            counts.waits_abandoned.append(event.at - event.joined_at)
            if live is not None:
                live.call_abandoned(QUEUE, event.at)


def make_connection(
    config: Config, reactor: Any, run_token: str, endpoint: IStreamClientEndpoint | None = None
) -> AMIConnection:
    """The AMI connection service as ``[ami]`` says (not started)."""
    ami = config.ami
    return AMIConnection(
        endpoint or TCP4ClientEndpoint(reactor, ami.host, ami.port),
        reactor,
        AMICredentials(ami.username, ami.secret, md5=ami.auth == "md5"),
        keepalive_interval=ami.keepalive_s,
        read_pace_s=ami.read_pace_ms / 1000.0,
        action_timeout=ami.action_timeout_s,
        retry_policy=backoffPolicy(
            initialDelay=ami.reconnect_initial_s, maxDelay=ami.reconnect_max_s
        ),
        max_message_bytes=ami.max_message_bytes,
        max_list_items=ami.max_list_items,
        max_list_bytes=ami.max_list_bytes,
        action_id_prefix=f"shenava-{run_token}",
    )


def _with_sound_folder(dispatch: DispatchConfig, folder: str) -> DispatchConfig:
    """The hold loop plays its prompts from the same sounds folder as the IVR."""
    return replace(dispatch, hold=replace(dispatch.hold, sound_folder=folder))
