"""Callback flags: one open flag per customer number, its reasons, attempts and outcome.

Pure: no I/O and no clock. Every function that needs the time takes ``now``
(POSIX seconds) and returns a new, frozen :class:`CallbackFlag`; the storage
(:mod:`routing.callback_store`) reads, applies one of these functions and writes
back in one Redis transaction.

The rules
---------

- **Sources.** A flag is raised by an abandon after the short-abandon threshold
  (:func:`abandon_reason`), an IVR callback request that keeps the caller's place
  (:func:`ivr_request_reason`, due when their turn would have come), a voicemail
  (:func:`voicemail_reason`, its transcript attached when the worker has one), an
  agent's follow-up (:func:`follow_up_reason`, with a due time) and a complaint
  left unresolved too long (:func:`unresolved_complaint_reason`).
- **Merging.** One open flag per number: a new reason merges into it
  (:func:`merge_reason`). The flag is due at the earliest due time of its
  reasons. A reason with the same ``(kind, source)`` as one already on the flag
  changes nothing, so a periodic sweep may raise the same reason again safely.
  A reason the *customer* gave (abandon, IVR request, voicemail) starts a fresh
  round of attempts: they have just shown they want to be reached.
- **Attempts.** At most ``max_attempts`` customer attempts per round, spaced by
  ``backoff_s`` after each failed one. An attempt the agent's leg never got
  past (``agent_unavailable``), or that gave way to the customer calling in
  (``customer_called_in``), does not count and sets no backoff.
- **Closing.** A flag closes only on a recorded outcome: ``answered`` (unless
  the agent asks for a follow-up, which keeps it open), ``wrong_number``, the
  attempts of a round exhausted (``unreachable``), or a supervisor's
  cancellation with a note. ``unreachable`` and ``wrong_number`` flags need a
  supervisor's attention until acknowledged: nothing is silently dropped.
- **Calling hours** (:class:`CallingHours`) are per weekday in the site's time
  zone; a window may cross midnight ("22:00-02:00" on Friday runs into Saturday).

The modules, in the order a flag lives: :mod:`.flags` (the values),
:mod:`.raising`, :mod:`.policy` (dial policy and calling hours),
:mod:`.dialling`, :mod:`.records` (to and from dicts), :mod:`.place`
(an IVR request's turn), with :mod:`.numbers` and :mod:`.errors` below them.
"""

from __future__ import annotations

from routing.callbacks.dialling import (
    GateDecision,
    acknowledge,
    cancel,
    dial_gate,
    interrupt_stale_attempt,
    is_due,
    next_attempt_at,
    next_dial_at,
    purge_transcripts,
    record_outcome,
    start_attempt,
)
from routing.callbacks.errors import (
    AttemptAlreadyEndedError,
    AttemptInProgressError,
    CallbackConfigError,
    CallbackError,
    FlagClosedError,
    InvalidNumberError,
    LeaseLostError,
    NoteRequiredError,
    UnknownAttemptError,
    UnknownFlagError,
)
from routing.callbacks.flags import (
    ATTENTION_RESOLUTIONS,
    CUSTOMER_REASONS,
    DEFAULT_BACKOFF_S,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_ATTEMPTS,
    MINUTES_PER_DAY,
    SHORT_ABANDON_S,
    SYSTEM,
    UNCOUNTED_OUTCOMES,
    Attempt,
    AttemptOutcome,
    CallbackFlag,
    FlagStatus,
    HistoryEntry,
    Reason,
    ReasonKind,
    Resolution,
)
from routing.callbacks.numbers import normalize_number
from routing.callbacks.place import DEFAULT_SECONDS_PER_TURN_S, MAX_TURN_WAIT_S, estimate_turn_due
from routing.callbacks.policy import WEEKDAYS, CallingHours, DialPolicy, Window
from routing.callbacks.raising import (
    abandon_reason,
    attach_transcript,
    follow_up_reason,
    ivr_request_reason,
    merge_reason,
    new_flag,
    unresolved_complaint_reason,
    voicemail_reason,
)
from routing.callbacks.records import flag_from_dict, flag_to_dict

__all__ = [
    "ATTENTION_RESOLUTIONS",
    "Attempt",
    "AttemptAlreadyEndedError",
    "AttemptInProgressError",
    "AttemptOutcome",
    "CUSTOMER_REASONS",
    "CallbackConfigError",
    "CallbackError",
    "CallbackFlag",
    "CallingHours",
    "DEFAULT_BACKOFF_S",
    "DEFAULT_LEASE_MS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_SECONDS_PER_TURN_S",
    "DialPolicy",
    "FlagClosedError",
    "FlagStatus",
    "GateDecision",
    "HistoryEntry",
    "InvalidNumberError",
    "LeaseLostError",
    "MAX_TURN_WAIT_S",
    "MINUTES_PER_DAY",
    "NoteRequiredError",
    "Reason",
    "ReasonKind",
    "Resolution",
    "SHORT_ABANDON_S",
    "SYSTEM",
    "UNCOUNTED_OUTCOMES",
    "UnknownAttemptError",
    "UnknownFlagError",
    "WEEKDAYS",
    "Window",
    "abandon_reason",
    "acknowledge",
    "attach_transcript",
    "cancel",
    "dial_gate",
    "estimate_turn_due",
    "flag_from_dict",
    "flag_to_dict",
    "follow_up_reason",
    "interrupt_stale_attempt",
    "is_due",
    "ivr_request_reason",
    "merge_reason",
    "new_flag",
    "next_attempt_at",
    "next_dial_at",
    "normalize_number",
    "purge_transcripts",
    "record_outcome",
    "start_attempt",
    "unresolved_complaint_reason",
    "voicemail_reason",
]
