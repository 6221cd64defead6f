"""``[daemon]``: its typed section and its parser."""

from __future__ import annotations

from dataclasses import dataclass

from shenava_base.aio import EVENT_LOOPS
from shenava_base.config_table import Table


@dataclass(frozen=True)
class DaemonConfig:
    """How ``shenava run`` stops, and how two daemons share one Asterisk."""

    stop_timeout_s: float = 10.0
    """SIGTERM ends the process within this bound, whatever Redis and AMI do."""
    lease_s: float = 3.0
    """The leader lease: a standby takes over at most this long after the leader dies."""
    leader_lease: bool = True
    """False: a daemon alone, always serving (no lease, so no standby may run beside it)."""
    gc_gen0_threshold: int = 50_000
    """Python's garbage collector, once the daemon serves: the start-up's objects are frozen
    out of the collected generations (``gc.freeze``) and a young collection runs after this
    many new container objects (Python's default is 700). 0 leaves the collector as Python
    sets it (docs/scaling.md, "Garbage collection")."""
    event_loop: str = EVENT_LOOPS[0]
    """The asyncio loop under Twisted's reactor: ``asyncio`` (the standard library's
    selector loop) or ``uvloop`` (libuv, the optional ``uvloop`` extra);
    ``SHENAVA_EVENT_LOOP`` overrides it for one run (docs/scaling.md, "Per-call CPU")."""


def parse_daemon(t: Table) -> DaemonConfig:
    d = DaemonConfig()
    return DaemonConfig(
        stop_timeout_s=t.get_float("stop_timeout_s", d.stop_timeout_s, minimum=1.0, maximum=300.0),
        lease_s=t.get_float("lease_s", d.lease_s, minimum=1.0, maximum=60.0),
        leader_lease=t.get_bool("leader_lease", d.leader_lease),
        gc_gen0_threshold=t.get_int("gc_gen0_threshold", d.gc_gen0_threshold,
                                    minimum=0, maximum=10_000_000),
        event_loop=t.get_choice("event_loop", EVENT_LOOPS, d.event_loop),
    )
