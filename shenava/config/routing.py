"""``[routing]``: its typed section and its parser."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agent_stats.states import NotReadyReason
from complaints.abuse import AbusePolicy
from routing.calls import Urgency
from routing.dispatch import DispatchConfig
from routing.hold import HoldConfig
from routing.router import DEFAULT_DECISION_HISTORY
from routing.scoring import ScoringConfig
from routing.selection import SelectionConfig
from shenava.config.checks import _build, _name
from shenava_base.config_table import Table

_MUSIC_CLASS_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_NO_ANSWER = {"missed": NotReadyReason.MISSED, "technical": NotReadyReason.TECHNICAL, "none": None}


@dataclass(frozen=True)
class RoutingConfig:
    """``[routing]``: connecting callers to agents, the priority score, agent selection."""

    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    decision_history: int = DEFAULT_DECISION_HISTORY
    """Assignments kept in memory for ``shenava explain`` (the latest)."""


def _music_class(value: str) -> str | None:
    return None if _MUSIC_CLASS_RE.match(value) else "expected a musiconhold.conf class (letters, digits, _ or -)"


def parse_hold(t: Table) -> HoldConfig:
    d = HoldConfig()
    return HoldConfig(
        music_class=t.get_str("music_class", d.music_class, check=_music_class),
        announce_every_s=t.get_float("announce_every_s", d.announce_every_s, minimum=5, maximum=3600),
        offer_options=t.get_bool("offer_options", d.offer_options),
        announce_position=t.get_bool("announce_position", d.announce_position),
    )


def _points(t: Table, keys: Callable[[str], str | None]) -> dict[str, float]:
    points: dict[str, float] = {}
    for key in t.data:
        reason = keys(key)
        if reason is not None:
            raise t.error(key, reason)
        points[key] = t.get_float(key, minimum=-1e6, maximum=1e6)
    return points


def parse_scoring(t: Table) -> ScoringConfig:
    d = ScoringConfig()
    urgencies = [u.value for u in Urgency]

    def category(key: str) -> str | None:
        return _name(key) and "expected a category name (letters, digits, '_' or '-') as the key"

    def urgency(key: str) -> str | None:
        return None if key in urgencies else f"unknown urgency (expected {', '.join(urgencies)})"

    category_points = dict(d.category_points)
    if t.has("category_points"):
        category_points |= t.section("category_points", lambda c: _points(c, category))
    urgency_points = {u.value: p for u, p in d.urgency_points.items()}
    if t.has("urgency_points"):
        urgency_points |= t.section("urgency_points", lambda u: _points(u, urgency))

    def weight(key: str, default: float) -> float:
        return t.get_float(key, default, minimum=-1e6, maximum=1e6)

    return _build(t, lambda: ScoringConfig(
        category_points=category_points,
        unknown_category_points=weight("unknown_category_points", d.unknown_category_points),
        urgency_points={Urgency(k): v for k, v in urgency_points.items()},
        vulnerable_points=weight("vulnerable_points", d.vulnerable_points),
        open_complaint_points=weight("open_complaint_points", d.open_complaint_points),
        recent_call_points=weight("recent_call_points", d.recent_call_points),
        callback_flag_points=weight("callback_flag_points", d.callback_flag_points),
        transcript_urgency_points=weight("transcript_urgency_points", d.transcript_urgency_points),
        ageing_points_per_s=t.get_float("ageing_points_per_s", d.ageing_points_per_s, positive=True, maximum=1e6),
    ))


def parse_selection(t: Table, abuse: AbusePolicy) -> SelectionConfig:
    """``[routing.selection]``; whether abusive callers go to experienced agents is ``abuse.route_to_experienced``."""
    return SelectionConfig(
        spare_hard_in_a_row=t.get_bool("spare_hard_in_a_row", SelectionConfig().spare_hard_in_a_row),
        abusive_caller_prefers_experienced=abuse.route_to_experienced,
    )


def parse_routing(t: Table, abuse: AbusePolicy) -> RoutingConfig:
    d = DispatchConfig()
    default_no_answer = "none" if d.on_no_answer is None else d.on_no_answer.value
    dispatch = DispatchConfig(
        ring_timeout_s=t.get_float("ring_timeout_s", d.ring_timeout_s, minimum=5, maximum=300),
        wrap_up_s=t.get_float("wrap_up_s", d.wrap_up_s, minimum=0, maximum=3600),
        on_no_answer=_NO_ANSWER[t.get_choice("on_no_answer", list(_NO_ANSWER), default_no_answer)],
        caller_id=t.get_str("caller_id", d.caller_id),
        hold=t.section("hold", parse_hold),
    )
    return RoutingConfig(
        dispatch=dispatch,
        scoring=t.section("scoring", parse_scoring),
        selection=t.section("selection", lambda s: parse_selection(s, abuse)),
        decision_history=t.get_int(
            "decision_history", DEFAULT_DECISION_HISTORY, minimum=1, maximum=1_000_000
        ),
    )
