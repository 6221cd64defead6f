"""How the agent_stats package joins the daemon's object graph (see shenava.app)."""

from __future__ import annotations

from agent_stats.host import StatsHost
from agent_stats.service import StatsService
from agent_stats.store import StatsStore
from routing.calls import QUEUE

WRITE_TICK_S = 0.2
"""The daemon's statistics writes: at most one ``MULTI``/``EXEC`` batch per tick, so a
busy second costs a few round trips, not one per agent change (state kept in memory
meanwhile; the next start reconciles it from the roster)."""
OUTCOME_BATCH_S = 0.5
"""SL outcomes from the journal gathered this long and counted in one script."""


def install(app: StatsHost) -> StatsService:
    """Build the store and the service, subscribe them, start them; returns the service.

    ``app`` is a :class:`shenava.app.Shenava` with ``redis`` set. The service
    starts at once: it reconciles with Redis (its writes wait until then) and
    then runs its heartbeat on ``app.reactor``.
    """
    config = app.config
    assert app.redis is not None, "the statistics are installed only with Redis"
    store = StatsStore(app.redis, config.sla, prefix=config.redis.key_prefix, site=config.site.id)
    service = StatsService(
        store=store,
        roster=app.roster,
        clock=app.reactor,
        sla=config.sla,
        breaks=config.breaks,
        wellbeing=config.wellbeing,
        default_queue=QUEUE,
    )
    service.writer.tick_s = WRITE_TICK_S
    journal = app.journal
    if journal is not None:
        service.writer.use_journal(journal, batch_s=OUTCOME_BATCH_S)
        if getattr(journal, "file", None) is not None:  # a durable state folder
            # past its cap the writer spills to the journal instead of dropping
            from agent_stats.spill import JournalSpill

            service.writer.spill = JournalSpill(journal, store, service.writer.kick)
        service.journal_health = journal.health
    service.attach(app.dispatcher, app.connection)
    from agent_stats.metrics import install as install_metrics

    # /metrics (shenava.http) finds them on the service.
    service.metrics = install_metrics(app, service)  # type: ignore[attr-defined]
    service.start()
    return service
