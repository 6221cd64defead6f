"""``shenava run``: the daemon against the operator's Asterisk and Redis.

Run it once, or twice (same config, same or another host) for an
active/standby pair: the daemon holding the leader lease in Redis
(:mod:`shenava.leader`) serves the calls; the other keeps a warm AMI link and
takes over when the lease lapses (:mod:`shenava.takeover`). A leader that
loses its lease (it was paused past it) exits at once with code 4, acting on
nothing, for its service manager to start it again as a standby.

SIGTERM/SIGINT stop it within ``daemon.stop_timeout_s`` whatever Redis and
Asterisk do: the call state and the statistics are written if Redis answers in
time (what cannot be written is logged), the lease is released so the standby
takes over at once, then the process exits; a last alarm ends it regardless.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred
from twisted.logger import Logger

from shenava.config import Config, ConfigError
from shenava_base.aio import as_deferred

log = Logger()

EXIT_DEPOSED = 4
"""Exit code of a leader that found its lease gone (paused past it): restart me as a standby."""
STOP_MARGIN_S = 1.0  # of the stop bound, kept for exiting
RELEASE_S = 1.0  # the lease's release may take this long at most when stopping
CLOSE_S = 1.0  # closing the two Redis clients, at most
HTTP_RETRY_S = 1.0  # a new leader whose HTTP port is still taken tries again this often


def tune_gc(gen0_threshold: int) -> tuple[int, int, int] | None:
    """Python's collector for a long-running daemon (``[daemon] gc_gen0_threshold``).

    What start-up built (config, agents, prompt tables, the app's objects) is
    collected once then frozen (``gc.freeze``): no later collection walks it
    again. The youngest generation is collected after ``gen0_threshold`` new
    container objects instead of Python's 700, so collections are fewer; the
    older generations keep their ratios. The collector stays on: cycles made
    while serving are still collected. 0: left as Python sets it (``None``)."""
    if gen0_threshold <= 0:
        return None
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    log.info(
        "garbage collector: {frozen} start-up objects frozen; thresholds {thresholds}",
        frozen=gc.get_freeze_count(), thresholds=gc.get_threshold(),
    )
    return gc.get_threshold()


class DaemonRun:
    """One ``shenava run`` process: its role, its app once leader, its stop."""

    def __init__(self, config: Config, reactor: Any, redis: Any, lease_redis: Any) -> None:
        from routing.channel_ids import new_run_token
        from shenava.app import make_connection
        from shenava.leader import LeaderLease, guard_redis

        self.config = config
        self.reactor = reactor
        self.redis = redis
        self.lease_redis = lease_redis
        self.run_token = new_run_token()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.run_token}"
        self.app: Any = None
        self.exit_code = 0
        self._stopping = False
        self.on_app: Any = None  # told of the app once built (the routing log)
        # Told once, when this process does its job: serving HTTP as the leader,
        # or standing by behind another daemon's lease (systemd's READY=1).
        self.on_ready: Any = None
        self._ready_told = False
        self.lease = LeaderLease(
            lease_redis, config.redis.key_prefix, self.owner, reactor,
            lease_s=config.daemon.lease_s, on_role=self._role_changed,
            on_refused=self._ready, site=config.site.id,
        )
        if config.daemon.leader_lease:
            # Nothing of this process reaches Redis or Asterisk unless it holds the lease.
            guard_redis(redis, self.lease.holds)
        self.connection = make_connection(config, reactor, self.run_token)

    def _ready(self) -> None:
        if self._ready_told or self._stopping:
            return
        self._ready_told = True
        if self.on_ready is not None:
            self.on_ready()

    def start(self) -> None:
        if not self.config.daemon.leader_lease:
            log.info("role: leader (alone: daemon.leader_lease = false)")
            self._lead(alone=True)
            return
        log.info("role: standby (waiting for the leader lease, AMI link warm)")
        self.connection.startService()
        self.lease.start()

    def _role_changed(self, role: str) -> None:
        from shenava.leader import LEADER

        if role == LEADER:
            try:
                self._lead()
            except Exception:
                # A leader that cannot serve must not hold the lease: stop
                # (releasing it) so the standby takes over.
                log.failure("could not start serving as the leader; stopping")
                self.exit_code = 1
                self.reactor.stop()
            return
        if self.app is not None:
            # Deposed (paused past the lease): the gates already refuse every
            # action and write; leave before anything else runs.
            log.critical("role: deposed leader; exiting with code {code}", code=EXIT_DEPOSED)
            sys.stderr.flush()
            os._exit(EXIT_DEPOSED)

    def _lead(self, *, alone: bool = False) -> None:
        from shenava.app import Shenava

        if not alone:
            log.info("role: leader (taking over the calls)")
            self.connection.may_act = self.lease.holds
        app = Shenava(
            self.config, reactor=self.reactor, redis=self.redis, connection=self.connection,
            run_token=self.run_token, fence=None if alone else self.lease.fence_value,
        )
        if not alone:
            app.role = lambda: "leader" if self.lease.holds() else "standby"
        if self.on_app is not None:
            self.on_app(app)
        self.app = app
        app.start(serve_http=False)
        tune_gc(self.config.daemon.gc_gen0_threshold)
        self._listen_http()
        if self.connection.protocol is not None:
            # The warm link resynchronised before the app listened: list again.
            self.connection.resync_now().addErrback(
                lambda f: log.warn("resync after taking the lease failed: {e}", e=f.getErrorMessage())
            )

    def _listen_http(self) -> None:
        """Serve HTTP. A daemon that stood by behind another's lease may find the
        port still held by that (deposed) leader on this host: it tries again each
        second, and the calls do not wait for it. A daemon that took the lease at
        once cannot serve on a port something else holds: it says so and exits 1,
        never ready, releasing the lease as it stops."""
        from twisted.internet.error import CannotListenError

        from shenava.http import start_http

        app = self.app
        if app is None or app.http_port is not None or self._stopping:
            return
        try:
            app.http_port = start_http(app)
        except CannotListenError as exc:
            if not self.lease.waited:
                log.critical("Shenava cannot start: {error}", error=str(exc))
                self.exit_code = 1
                self.reactor.stop()
                return
            log.warn("HTTP port busy ({error}); trying again in 1 s", error=exc.socketError)
            self.reactor.callLater(HTTP_RETRY_S, self._listen_http)
            return
        self._ready()

    def stop(self) -> Deferred[None]:
        """Stop within ``daemon.stop_timeout_s``: the app (statistics, call state),
        then the lease, then the clients, each with a share of the time."""
        self._stopping = True
        total = self.config.daemon.stop_timeout_s
        d = ensureDeferred(self._stop(max(0.5, total - RELEASE_S - CLOSE_S - STOP_MARGIN_S)))
        d.addTimeout(max(0.5, total - STOP_MARGIN_S / 2), self.reactor)
        d.addErrback(lambda f: log.error("stopping: {error}", error=f.getErrorMessage()))
        return d

    async def _stop(self, app_budget: float) -> None:
        if self.app is not None:
            stopping = self.app.stop()
            stopping.addTimeout(app_budget, self.reactor)
            try:
                await stopping
            except (CancelledError, TimeoutError):
                self._stop_cut_short(app_budget)
            except Exception as exc:
                log.error("stopping the daemon: {error}", error=exc)
        elif self.connection.running:
            await self.connection.stopService()
        released = self.lease.release()
        released.addTimeout(RELEASE_S, self.reactor)
        try:
            await released
        except Exception as exc:
            log.warn("leader lease not released ({error}): the standby waits it out", error=exc)
        for client in (self.redis, self.lease_redis):
            closing = as_deferred(client.aclose())
            closing.addTimeout(CLOSE_S / 2, self.reactor)
            try:
                await closing
            except Exception:
                pass  # closing the clients is the last step: nothing is lost

    def _stop_cut_short(self, budget: float) -> None:
        takeover = self.app.takeover if self.app is not None else None
        recorder = getattr(takeover, "recorder", None)
        unwritten = recorder.pending if recorder is not None else 0
        log.error(
            "stopped without finishing within {budget} s: the state of {calls} calls and any "
            "statistics not yet flushed were not written to Redis; the callers stay on "
            "Asterisk and the next daemon takes them over from what Redis holds",
            budget=budget, calls=unwritten,
        )


def run_daemon(config: Config, *, log_format: str = "text") -> int:
    """Run until stopped (SIGINT/SIGTERM); exit code 0 on a clean stop, 1 if it could not start.

    Under systemd (``Type=notify``) it says ``READY=1`` once the HTTP API
    listens and the AMI link is being made, keeps ``STATUS=`` to the AMI
    link's state, pings the watchdog from the reactor, and says ``STOPPING=1``
    at shutdown (shenava.sd_notify)."""
    try:
        config.require_external_redis()
    except ConfigError as exc:
        print(f"shenava: invalid config: {exc}", file=sys.stderr)
        return 2
    if config.state.folder:
        from shenava.state_folder import StateFolderError, require_state_folder

        try:
            require_state_folder(Path(config.state.folder))
        except StateFolderError as exc:
            print(f"shenava: {exc}", file=sys.stderr)
            return 1

    from shenava.logs import start_logging
    from shenava.routing_log import RoutingLog
    from shenava.sd_notify import Notifier
    from shenava_base.aio import EventLoopError, install_asyncio_reactor, loop_kind_of

    try:
        reactor: Any = install_asyncio_reactor(config.daemon.event_loop)
    except EventLoopError as exc:
        print(f"shenava: {exc}", file=sys.stderr)
        return 2
    start_logging(config.log.level, stream=sys.stderr, fmt=log_format)
    from shenava.redis_client import describe, make_redis_client, wait_for_redis

    client = make_redis_client(config.redis)
    # The lease has a client of its own: the app's is gated by the lease itself.
    lease_client = make_redis_client(config.redis)
    run = DaemonRun(config, reactor, client, lease_client)
    run.on_app = lambda app: RoutingLog().attach(app.dispatcher, app.tracker)
    notifier = Notifier()
    ami_at = f"{config.ami.host}:{config.ami.port}"

    def on_ami_state(state: Any) -> None:
        name = getattr(state, "value", str(state))
        notifier.status(f"AMI {ami_at}: {name}")

    def ready() -> None:
        notifier.ready(f"AMI {ami_at}: connecting")
        notifier.start_watchdog(reactor)

    run.on_ready = ready

    def start() -> None:
        run.start()
        run.connection.add_state_observer(on_ami_state)

    def stopping() -> Deferred[None]:
        notifier.stopping()
        # The last resort: whatever hangs, the process ends within the bound.
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, math.ceil(config.daemon.stop_timeout_s)))
        return run.stop()

    reactor.callWhenRunning(
        wait_for_redis, lease_client, reactor, where=describe(config.redis),
        max_delay_s=config.redis.startup_retry_max_s,
    )
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    log.info(
        "Shenava starting: AMI {host}:{port} as {user}; leader lease {lease} s; {loop} event loop",
        host=config.ami.host, port=config.ami.port, user=config.ami.username,
        lease=config.daemon.lease_s, loop=loop_kind_of(reactor._asyncioEventloop),
    )
    reactor.run()
    return run.exit_code
