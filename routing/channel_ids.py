"""``ChannelId``s for the legs the daemon originates, never the same twice.

Asterisk refuses an ``Originate`` whose ``ChannelId`` is still in use, and a
restarted daemon that counted from 1 again would reuse the ids of legs its
predecessor left ringing or talking. Each run draws a random token once (48
bits from the OS) and numbers its legs under it, so ids differ across starts,
across the two daemons of a pair, and within a run.
"""

from __future__ import annotations

import itertools
import secrets

RUN_TOKEN_BYTES = 6


def new_run_token() -> str:
    """A fresh token for one daemon run (12 hex digits)."""
    return secrets.token_hex(RUN_TOKEN_BYTES)


class ChannelIds:
    """Makes ``<prefix><run>-<n>-<agent>`` ids; ``run`` defaults to a fresh token."""

    def __init__(self, prefix: str, run: str | None = None) -> None:
        self.prefix = prefix
        self.run = run or new_run_token()
        self._numbers = itertools.count(1)

    def next(self, agent_id: str) -> str:
        return f"{self.prefix}{self.run}-{next(self._numbers)}-{agent_id}"

    def ours(self, uniqueid: str) -> bool:
        """Made by any run of this kind of originator (this process or an earlier one)."""
        return uniqueid.startswith(self.prefix)
