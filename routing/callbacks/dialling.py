"""Dialling a flag: when it is due, the gate that keeps callbacks off a busy line, attempts and outcomes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from routing.callbacks.errors import (
    AttemptAlreadyEndedError,
    AttemptInProgressError,
    NoteRequiredError,
    UnknownAttemptError,
)
from routing.callbacks.flags import (
    SYSTEM,
    Attempt,
    AttemptOutcome,
    CallbackFlag,
    FlagStatus,
    HistoryEntry,
    Resolution,
    require_open,
)
from routing.callbacks.policy import CallingHours, DialPolicy
from routing.callbacks.raising import follow_up_reason, merge_reason


def next_attempt_at(flag: CallbackFlag, policy: DialPolicy) -> float | None:
    """When the flag may next be dialled, ignoring calling hours; ``None`` if never."""
    if not flag.is_open or flag.attempt_in_progress is not None:
        return None
    failed = flag.round_attempts
    if not failed:
        return flag.due_at
    last_end = failed[-1].ended_at or failed[-1].started_at
    return max(flag.due_at, last_end + policy.backoff_after(len(failed)))


def next_dial_at(flag: CallbackFlag, policy: DialPolicy, hours: CallingHours) -> float | None:
    """When the flag may next be dialled, within calling hours."""
    at = next_attempt_at(flag, policy)
    return None if at is None else hours.next_allowed(at)


def is_due(flag: CallbackFlag, now: float, policy: DialPolicy, hours: CallingHours) -> bool:
    at = next_attempt_at(flag, policy)
    return at is not None and at <= now and hours.is_open(now)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether the site may dial a callback now, and why (for the wallboard and logs).

    ``gate`` names the test that said no (``calling_hours``, ``free_agents``,
    ``waiting_calls``, ``service_level``); empty when the gate is open.
    """

    open: bool
    reason: str
    gate: str = ""


def dial_gate(
    now: float,
    hours: CallingHours,
    policy: DialPolicy,
    *,
    free_agents: int,
    waiting_calls: int,
    service_level: float | None,
    staffed_service_level: float | None = None,
) -> GateDecision:
    """Callbacks are dialled only in calling hours, with a free agent and SLA headroom.

    ``service_level`` is the one predicted with one agent fewer (the agent the
    callback takes away); ``staffed_service_level`` the one predicted with the
    agents staffed now. With one or two agents the first is 0 or near it
    whatever the traffic (no agent answers no call), so a callback would never
    be dialled; when nobody waits and the agents staffed keep the service level
    on target, the callback goes ahead: an inbound call arriving meanwhile
    waits at most for one callback.
    """
    if not hours.is_open(now):
        return GateDecision(False, "outside calling hours", "calling_hours")
    if free_agents < policy.min_free_agents:
        return GateDecision(
            False, f"{free_agents} free agents, {policy.min_free_agents} needed", "free_agents"
        )
    if waiting_calls > policy.max_waiting_calls:
        return GateDecision(
            False,
            f"{waiting_calls} inbound calls waiting (at most {policy.max_waiting_calls})",
            "waiting_calls",
        )
    target = policy.min_service_level
    if service_level is not None and service_level < target:
        if (
            waiting_calls == 0
            and staffed_service_level is not None
            and staffed_service_level >= target
        ):
            return GateDecision(
                True,
                f"nobody waiting and the agents staffed keep the predicted service level "
                f"{_pct(staffed_service_level)} (one agent fewer: {_pct(service_level)}, "
                f"target {_pct(target)})",
            )
        staffed = (
            f", with the agents staffed {_pct(staffed_service_level)}"
            if staffed_service_level is not None else ""
        )
        return GateDecision(
            False,
            f"predicted service level with one agent fewer {_pct(service_level)}{staffed}, "
            f"below {_pct(target)}",
            "service_level",
        )
    return GateDecision(True, "calling hours, a free agent and service-level headroom")


def _pct(value: float) -> str:
    return f"{value:.0%}"


def start_attempt(flag: CallbackFlag, now: float, agent_id: str) -> CallbackFlag:
    """Record that the customer is being dialled (call it before the Originate)."""
    require_open(flag)
    busy = flag.attempt_in_progress
    if busy is not None:
        raise AttemptInProgressError(flag.flag_id, busy.number)
    attempt = Attempt(len(flag.attempts) + 1, now, agent_id)
    entry = HistoryEntry(now, agent_id, "attempt", str(attempt.number))
    return replace(flag, attempts=(*flag.attempts, attempt), history=(*flag.history, entry))


def interrupt_stale_attempt(flag: CallbackFlag, now: float, policy: DialPolicy) -> CallbackFlag:
    """The daemon dialling this flag vanished (its lease expired).

    The attempt counts (the customer's phone may have rung), so a daemon that
    crashes again and again cannot pester a customer beyond ``max_attempts``.
    """
    busy = flag.attempt_in_progress
    if busy is None:
        return flag
    return record_outcome(flag, busy.number, AttemptOutcome.INTERRUPTED, now, policy, by=SYSTEM)


def record_outcome(
    flag: CallbackFlag,
    attempt_no: int,
    outcome: AttemptOutcome,
    now: float,
    policy: DialPolicy,
    *,
    by: str,
    note: str = "",
    follow_up_at: float | None = None,
) -> CallbackFlag:
    """Record how an attempt ended, and close the flag when the outcome says so.

    ``answered`` closes the flag unless ``follow_up_at`` is given (the customer
    asked to be called again), which merges a follow-up and starts a new round.
    ``wrong_number`` closes it; a failed attempt that exhausts the round closes it
    as ``unreachable``. A late outcome for an attempt already marked
    ``interrupted`` replaces that mark and is noted in the history; the attempt
    still counts once (it did when it was marked). It weighs as if on time:

    - if another attempt is being dialled meanwhile (the daemon that marked it
      claimed the flag again), a late ``answered`` or ``wrong_number`` closes the
      flag when that attempt ends, whatever its own outcome;
    - if the mark exhausted the round and closed the flag ``unreachable``, a late
      ``answered`` or ``wrong_number`` closes it so instead (the customer was
      reached: no supervisor needs to look at it).

    Before, such an outcome was kept in the attempt but changed nothing: a
    customer who had answered was called again, or listed as unreachable.
    """
    index = attempt_no - 1
    if not 0 <= index < len(flag.attempts):
        raise UnknownAttemptError(flag.flag_id, attempt_no)
    attempt = flag.attempts[index]
    late = attempt.outcome is AttemptOutcome.INTERRUPTED
    if attempt.outcome is not None and not late:
        raise AttemptAlreadyEndedError(flag.flag_id, attempt_no, attempt.outcome)
    ended = replace(attempt, outcome=outcome, ended_at=now, note=note)
    attempts = (*flag.attempts[:index], ended, *flag.attempts[index + 1 :])
    event = "late_outcome" if late else "outcome"
    entry = HistoryEntry(now, by, event, f"{attempt_no}:{outcome}" + (f" ({note})" if note else ""))
    flag = replace(flag, attempts=attempts, history=(*flag.history, entry))
    if not flag.is_open:
        reached = _LATE_CLOSES.get(outcome)
        if late and reached is not None and flag.resolution is Resolution.UNREACHABLE:
            return _close(flag, reached, now, by, note)
        return flag
    if flag.attempt_in_progress is not None:
        return flag
    if outcome not in _LATE_CLOSES or (outcome is AttemptOutcome.ANSWERED and follow_up_at is not None):
        # a late answer or wrong number kept while a later attempt ran decides now
        for earlier in flag.attempts[flag.round_start :]:
            if earlier.outcome in _LATE_CLOSES and earlier is not ended:
                return _close(flag, _LATE_CLOSES[earlier.outcome], now, SYSTEM,
                              f"attempt {earlier.number}: {earlier.outcome} (late)")
    if outcome is AttemptOutcome.ANSWERED:
        if follow_up_at is not None:
            # the customer was reached and asked for another call: a fresh round
            merged = merge_reason(flag, follow_up_reason(by, now, follow_up_at, note), now)
            return replace(merged, round_start=len(merged.attempts))
        return _close(flag, Resolution.ANSWERED, now, by, note)
    if outcome is AttemptOutcome.WRONG_NUMBER:
        return _close(flag, Resolution.WRONG_NUMBER, now, by, note)
    if len(flag.round_attempts) >= policy.max_attempts:
        return _close(flag, Resolution.UNREACHABLE, now, SYSTEM, f"{policy.max_attempts} attempts")
    return flag


def cancel(flag: CallbackFlag, now: float, *, by: str, note: str) -> CallbackFlag:
    """A supervisor closes a flag by hand (e.g. the customer called in and was served)."""
    require_open(flag)
    if flag.attempt_in_progress is not None:
        raise AttemptInProgressError(flag.flag_id, flag.attempts[-1].number)
    if not note.strip():
        raise NoteRequiredError("cancelling a callback flag needs a note saying why")
    return _close(flag, Resolution.CANCELLED, now, by, note)


def acknowledge(flag: CallbackFlag, now: float, *, by: str) -> CallbackFlag:
    """A supervisor has seen an unreachable or wrong-number flag."""
    if not flag.needs_attention:
        return flag
    entry = HistoryEntry(now, by, "acknowledged")
    return replace(flag, acknowledged_by=by, history=(*flag.history, entry))


def purge_transcripts(flag: CallbackFlag, now: float) -> CallbackFlag:
    """Retention: a closed flag's voicemail transcripts are removed; the purge is recorded."""
    reasons = tuple(replace(r, transcript=None) for r in flag.reasons)
    entry = HistoryEntry(now, SYSTEM, "purged", f"{len(flag.transcripts)} transcripts")
    return replace(flag, reasons=reasons, purged_at=now, history=(*flag.history, entry))


_LATE_CLOSES = {
    AttemptOutcome.ANSWERED: Resolution.ANSWERED,
    AttemptOutcome.WRONG_NUMBER: Resolution.WRONG_NUMBER,
}
"""Outcomes that close a flag: a late one closes it even after the round moved on."""


def _close(flag: CallbackFlag, resolution: Resolution, now: float, by: str, note: str) -> CallbackFlag:
    entry = HistoryEntry(now, by, "closed", str(resolution) + (f" ({note})" if note else ""))
    return replace(
        flag,
        status=FlagStatus.CLOSED,
        resolution=resolution,
        closed_at=now,
        history=(*flag.history, entry),
    )
