"""A one-line progress bar on stderr, redrawn in place (no extra dependency)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar"]

WIDTH = 30


class ProgressBar:
    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        label: str = "files",
        monotonic: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.audio_s = 0.0
        self._stream = stream if stream is not None else sys.stderr
        self._label = label
        self._monotonic = monotonic
        self._started = monotonic()
        self._enabled = enabled

    def advance(self, *, audio_s: float = 0.0, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        self.audio_s += audio_s
        self.draw()

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(round(share * WIDTH))
        elapsed = self._monotonic() - self._started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} {self._label}{failed}"
            f"  {self.audio_s:.1f} s audio  {elapsed:.0f} s elapsed  ETA {eta:.0f} s"
        )

    def draw(self) -> None:
        if self._enabled:
            self._stream.write("\r" + self.line())
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
