"""``[complaints]`` and ``[abuse]`` (the latter lands in ``Config.complaints.abuse``)."""

from __future__ import annotations

from complaints.abuse import AbusePolicy
from complaints.service import RegisterPolicy
from shenava.config.checks import _build, _optional_float
from shenava_base.config_table import Table


def parse_abuse(t: Table) -> AbusePolicy:
    d = AbusePolicy()
    return _build(t, lambda: AbusePolicy(
        route_to_experienced=t.get_bool("route_to_experienced", d.route_to_experienced),
        flag_window_s=_optional_float(t, "flag_window_s", d.flag_window_s, none_word="forever", positive=True),
        recovery_s=t.get_float("recovery_s", d.recovery_s, positive=True, maximum=86400),
    ))


def parse_complaints(t: Table, abuse: AbusePolicy) -> RegisterPolicy:
    d = RegisterPolicy()
    return _build(t, lambda: RegisterPolicy(
        repeat_window_s=t.get_float("repeat_window_s", d.repeat_window_s, positive=True),
        unresolved_callback_s=t.get_float("unresolved_callback_s", d.unresolved_callback_s, positive=True),
        retention_s=t.get_float("retention_s", d.retention_s, positive=True),
        abuse=abuse,
    ))
