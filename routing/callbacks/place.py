"""Keeping the caller's place: when an IVR callback request's turn would have come."""

from __future__ import annotations

DEFAULT_SECONDS_PER_TURN_S = 120.0
"""Seconds per place in line when nothing was answered recently (no rate to go by)."""
MAX_TURN_WAIT_S = 4 * 3600.0
"""A place kept is due within this long, however slow the line: the flag is not forgotten."""


def estimate_turn_due(
    now: float,
    position: int,
    answers_in_window: int,
    window_s: float,
    *,
    seconds_per_turn_s: float = DEFAULT_SECONDS_PER_TURN_S,
) -> float:
    """When a caller at ``position`` (1 = next) would have reached an agent.

    The line moves at the recent answer rate (``answers_in_window`` calls
    answered over the last ``window_s``); with no answers to go by, each place
    ahead costs ``seconds_per_turn_s``. The caller at the head is due at once.
    """
    ahead = max(0, position - 1)
    if ahead == 0:
        return now
    if answers_in_window > 0 and window_s > 0:
        per_turn = window_s / answers_in_window
    else:
        per_turn = seconds_per_turn_s
    return now + min(ahead * per_turn, MAX_TURN_WAIT_S)
