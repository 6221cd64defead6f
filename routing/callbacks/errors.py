"""The callback errors: one class per refusal, each with a stable code."""

from __future__ import annotations

from routing.errors import RoutingError


class CallbackError(RoutingError):
    """Base of every callback error."""

    code = "callbacks.error"


class InvalidNumberError(CallbackError, ValueError):
    """A number no one can call back (empty, anonymous, not digits)."""

    code = "callbacks.invalid_number"


class FlagClosedError(CallbackError):
    """The flag was closed already; a closed flag never changes again."""

    code = "callbacks.flag_closed"

    def __init__(self, flag_id: str) -> None:
        self.flag_id = flag_id
        super().__init__(f"callback flag {flag_id!r} is closed")


class AttemptInProgressError(CallbackError):
    """An attempt is being dialled; a flag is never dialled twice at once."""

    code = "callbacks.attempt_in_progress"

    def __init__(self, flag_id: str, attempt: int) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"callback flag {flag_id!r} is being dialled (attempt {attempt})")


class AttemptAlreadyEndedError(CallbackError):
    """An outcome for an attempt that already has one (other than ``interrupted``)."""

    code = "callbacks.attempt_already_ended"

    def __init__(self, flag_id: str, attempt: int, outcome: str) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"attempt {attempt} of callback flag {flag_id!r} already ended: {outcome}")


class UnknownAttemptError(CallbackError, KeyError):
    """An outcome names an attempt the flag does not have."""

    code = "callbacks.unknown_attempt"

    def __init__(self, flag_id: str, attempt: int) -> None:
        self.flag_id = flag_id
        self.attempt = attempt
        super().__init__(f"callback flag {flag_id!r} has no attempt {attempt}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownFlagError(CallbackError, KeyError):
    """No flag has this id (or no open flag has this number)."""

    code = "callbacks.unknown_flag"

    def __init__(self, what: str) -> None:
        super().__init__(f"no callback flag {what}")

    def __str__(self) -> str:
        return str(self.args[0])


class NoteRequiredError(CallbackError, ValueError):
    """A change that must say why (cancelling a flag) was given no note."""

    code = "callbacks.note_required"


class CallbackConfigError(CallbackError, ValueError):
    """A callback setting is invalid; ``key`` is its path in the config file."""

    code = "callbacks.invalid_config"

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class LeaseLostError(CallbackError):
    """The dial lease expired or was taken over; the holder must stop dialling."""

    code = "callbacks.lease_lost"

    def __init__(self, flag_id: str) -> None:
        self.flag_id = flag_id
        super().__init__(f"the dial lease of callback flag {flag_id!r} is no longer held")
