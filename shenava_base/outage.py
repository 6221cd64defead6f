"""One warning per outage, not one traceback per failed look-up.

A look-up the daemon makes for every caller (their facts at the join) fails
for every caller while Redis is away: logging each as a failure gave a
traceback per caller (about 87 per Redis restart). :class:`OutageNote` says
the first expected failure once, as a warning, counts the rest, and when a
look-up succeeds again says how many failed and for how long. Anything not
expected (a bug, a malformed reply) is still the caller's to log as a failure:
:meth:`OutageNote.expected` tells which.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from shenava_base.journal import is_transient

__all__ = ["OutageNote"]


class OutageNote:
    """``what``: the look-up ("caller facts"); ``meanwhile``: what callers get instead."""

    def __init__(
        self, what: str, meanwhile: str, log: Logger, now: Callable[[], float],
        expected: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.what = what
        self.meanwhile = meanwhile
        self._log = log
        self._now = now
        self._expected = expected
        self.failures = 0
        """Expected failures in the outage going on (0: none)."""
        self.since: float | None = None
        self.outages = 0

    def expected(self, error: BaseException) -> bool:
        """Redis away, slow, loading or failing over (``is_transient``): counted, no traceback."""
        return self._expected(error)

    def failed(self, error: BaseException) -> None:
        """An expected failure: the first of an outage is said once, the rest counted."""
        self.failures += 1
        if self.since is not None:
            return
        self.since = self._now()
        self.outages += 1
        self._log.warn(
            "{what} unavailable ({error}): {meanwhile} until Redis answers again "
            "(said once per outage; counted)",
            what=self.what, error=f"{type(error).__name__}: {error}", meanwhile=self.meanwhile,
        )

    def ok(self) -> None:
        """A look-up succeeded: an outage going on is over (said with its count)."""
        if self.since is None:
            return
        self._log.info(
            "{what} available again: {count} look-ups failed over {seconds:.1f} s",
            what=self.what, count=self.failures, seconds=max(0.0, self._now() - self.since),
        )
        self.failures = 0
        self.since = None
