"""``[breaks]``: its typed section and its parser."""

from __future__ import annotations

from agent_stats.breaks import BreakConfig
from agent_stats.states import NotReadyReason
from shenava.config.checks import _build
from shenava_base.config_table import Table

_REASONS = [r.value for r in NotReadyReason]


def parse_breaks(t: Table) -> BreakConfig:
    d = BreakConfig()

    def reasons(key: str, default: frozenset[NotReadyReason]) -> frozenset[NotReadyReason]:
        names = t.get_str_list(key, sorted(r.value for r in default), allowed=_REASONS)
        return frozenset(NotReadyReason(n) for n in names)

    return _build(t, lambda: BreakConfig(
        earn_per_hour_s=t.get_float("earn_per_hour_s", d.earn_per_hour_s, minimum=0, maximum=3600),
        personal_exempt_s=t.get_float("personal_exempt_s", d.personal_exempt_s, minimum=0, maximum=86400),
        max_wait_s=t.get_float("max_wait_s", d.max_wait_s, minimum=0, maximum=86400),
        counted_reasons=reasons("counted_reasons", d.counted_reasons),
        queued_reasons=reasons("queued_reasons", d.queued_reasons),
        headroom_target=t.get_float("headroom_target", d.headroom_target, minimum=0, maximum=1),
        min_staffed=t.get_int("min_staffed", d.min_staffed, minimum=0, maximum=10000),
    ))
