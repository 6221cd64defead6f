"""``shenava run``: the daemon against the operator's Asterisk and Redis."""

from __future__ import annotations

import sys
from typing import Any

from twisted.logger import Logger

from shenava.config import Config, ConfigError

log = Logger()


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

    from shenava.aio import as_deferred, install_asyncio_reactor
    from shenava.app import Shenava
    from shenava.logs import start_logging
    from shenava.routing_log import RoutingLog
    from shenava.sd_notify import Notifier

    reactor: Any = install_asyncio_reactor()
    start_logging(config.log.level, stream=sys.stderr, fmt=log_format)
    from shenava.redis_client import describe, make_redis_client, wait_for_redis

    client = make_redis_client(config.redis)
    app = Shenava(config, reactor=reactor, redis=client)
    RoutingLog().attach(app.dispatcher, app.tracker)
    notifier = Notifier()
    ami_at = f"{config.ami.host}:{config.ami.port}"

    def on_ami_state(state: Any) -> None:
        name = getattr(state, "value", str(state))
        notifier.status(f"AMI {ami_at}: {name}")

    failed: list[str] = []

    def start() -> None:
        try:
            app.start()
        except Exception as exc:  # e.g. the HTTP port is taken: say so, never READY=1
            failed.append(str(exc))
            log.critical("Shenava cannot start: {error}", error=str(exc))
            reactor.stop()
            return
        app.connection.add_state_observer(on_ami_state)
        notifier.ready(f"AMI {ami_at}: connecting")
        notifier.start_watchdog(reactor)

    def stop() -> Any:
        notifier.stopping()
        d = app.stop()
        d.addBoth(lambda _: as_deferred(client.aclose()))
        return d

    reactor.callWhenRunning(
        wait_for_redis, client, reactor, where=describe(config.redis),
        max_delay_s=config.redis.startup_retry_max_s,
    )
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    log.info(
        "Shenava starting: AMI {host}:{port} as {user}",
        host=config.ami.host, port=config.ami.port, user=config.ami.username,
    )
    reactor.run()
    return 1 if failed else 0
