"""``shenava run``: the daemon against the operator's Asterisk and Redis."""

from __future__ import annotations

import sys
from typing import Any

from twisted.logger import Logger

from shenava.config import Config, ConfigError

log = Logger()


def run_daemon(config: Config) -> int:
    """Run until stopped (SIGINT/SIGTERM); exit code 0 on a clean stop."""
    try:
        config.require_external_redis()
    except ConfigError as exc:
        print(f"shenava: invalid config: {exc}", file=sys.stderr)
        return 2

    from shenava.aio import as_deferred, install_asyncio_reactor
    from shenava.app import Shenava
    from shenava.logs import start_logging

    reactor: Any = install_asyncio_reactor()
    start_logging(config.log.level, stream=sys.stderr)
    from shenava.redis_client import describe, make_redis_client, wait_for_redis

    client = make_redis_client(config.redis)
    app = Shenava(config, reactor=reactor, redis=client)

    def stop() -> Any:
        d = app.stop()
        d.addBoth(lambda _: as_deferred(client.aclose()))
        return d

    reactor.callWhenRunning(
        wait_for_redis, client, reactor, where=describe(config.redis),
        max_delay_s=config.redis.startup_retry_max_s,
    )
    reactor.callWhenRunning(app.start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    log.info(
        "Shenava starting: AMI {host}:{port} as {user}",
        host=config.ami.host, port=config.ami.port, user=config.ami.username,
    )
    reactor.run()
    return 0
