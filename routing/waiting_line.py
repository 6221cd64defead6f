"""The waiting line: every call that wants an agent, best first, per language and skill.

Calls live in one heap per ``(language, skill)`` bucket. Because the order of
calls does not change with time (see :mod:`routing.scoring`), a heap entry is
keyed once, when the call joins, by ``(-ranking_key, joined_at, seq)``: higher
score first, then the longer wait, then the earlier join. Finding the best call
for an agent looks only at the tops of the buckets the agent can serve (its
languages times its skills), never at the whole line, so a decision costs
O(buckets + log n) at any length of line.

A call's place (``position``, read for every hold announcement) is O(log n)
too: the live entries are also kept in sorted lists, one per bucket and one
for the whole line, where a place is a binary search.

Leaving is lazy: the call is forgotten at once and its heap entry is dropped when
it reaches the top, or when a bucket holds more dead entries than live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import count, islice, product

from sortedcontainers import SortedList

from routing.calls import WaitingCall
from routing.errors import CallAlreadyWaitingError, UnknownCallError
from routing.explain import format_parts, why_ahead
from routing.scoring import Score, ScoringConfig, ranking_key, score

Bucket = tuple[str, str]
# (-ranking_key, joined_at, seq, call_id): tuples compare in C, and seq is unique,
# so the call id is never compared.
_Entry = tuple[float, float, int, str]

# Rebuild a bucket's heap when its dead entries pass both of these.
_COMPACT_MIN_DEAD = 64


@dataclass(frozen=True, slots=True)
class Position:
    """Where a call stands: among calls for the same agents, and in the whole line.

    1 is first. ``in_bucket`` is what the caller's wait depends on; ``overall``
    also counts calls of other languages and skills that score higher.
    """

    in_bucket: int
    bucket_size: int
    overall: int
    total: int


@dataclass(frozen=True, slots=True)
class Ahead:
    """A call ahead of the one explained, and why it is ahead."""

    call_id: str
    score: Score
    why: str


@dataclass(frozen=True, slots=True)
class LineExplanation:
    """Why a waiting call stands where it does."""

    call: WaitingCall
    score: Score
    position: Position
    ahead: tuple[Ahead, ...]

    def render(self) -> str:
        pos = self.position
        lines = [
            f"call {self.call.call_id} ({self.call.language}, {self.call.skill}): "
            f"score {self.score.total:.0f} = {format_parts(self.score.parts)}",
            f"position {pos.in_bucket} of {pos.bucket_size} waiting for "
            f"{self.call.language}/{self.call.skill} agents "
            f"({pos.overall} of {pos.total} in the whole line)",
        ]
        if not self.ahead:
            lines.append(
                "first in line: no call for these agents scores higher or has waited longer"
            )
        for item in self.ahead:
            lines.append(f"  behind {item.call_id} (score {item.score.total:.0f}): {item.why}")
        if pos.in_bucket - 1 > len(self.ahead):
            lines.append(f"  ... and {pos.in_bucket - 1 - len(self.ahead)} more")
        return "\n".join(lines)


class WaitingLine:
    """Waiting calls ordered by priority; pure (no clock: callers pass ``now``)."""

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._heaps: dict[Bucket, list[_Entry]] = {}
        self._live: dict[str, tuple[_Entry, WaitingCall]] = {}
        self._live_count: dict[Bucket, int] = {}
        self._sorted: dict[Bucket, SortedList] = {}
        self._all_sorted = SortedList()
        self._seq = count()

    @property
    def config(self) -> ScoringConfig:
        return self._config

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._live

    def __iter__(self) -> Iterator[WaitingCall]:
        """Every waiting call, in no particular order."""
        return (call for _, call in self._live.values())

    def get(self, call_id: str) -> WaitingCall | None:
        found = self._live.get(call_id)
        return found[1] if found else None

    def count_for(self, languages: Collection[str], skills: Collection[str]) -> int:
        """How many waiting calls an agent with these languages and skills can take."""
        return sum(self._live_count.get(b, 0) for b in product(languages, skills))

    def join(self, call: WaitingCall) -> None:
        if call.call_id in self._live:
            raise CallAlreadyWaitingError(call.call_id)
        entry: _Entry = (
            -ranking_key(call, self._config),
            call.joined_at,
            next(self._seq),
            call.call_id,
        )
        bucket = (call.language, call.skill)
        heapq.heappush(self._heaps.setdefault(bucket, []), entry)
        self._live[call.call_id] = (entry, call)
        self._live_count[bucket] = self._live_count.get(bucket, 0) + 1
        ordered = self._sorted.get(bucket)
        if ordered is None:
            ordered = self._sorted[bucket] = SortedList()
        ordered.add(entry)
        self._all_sorted.add(entry)

    def leave(self, call_id: str) -> WaitingCall:
        """Take a call out of the line (answered elsewhere, hung up, chose a callback)."""
        found = self._live.pop(call_id, None)
        if found is None:
            raise UnknownCallError(call_id)
        entry, call = found
        bucket = (call.language, call.skill)
        self._live_count[bucket] -= 1
        self._sorted[bucket].remove(entry)
        self._all_sorted.remove(entry)
        heap = self._heaps[bucket]
        dead = len(heap) - self._live_count[bucket]
        if dead > _COMPACT_MIN_DEAD and dead > self._live_count[bucket]:
            self._compact(bucket)
        return call

    def peek_best(self, languages: Collection[str], skills: Collection[str]) -> WaitingCall | None:
        """The best call an agent with these languages and skills can take."""
        best = self._best_entry(languages, skills)
        return self._live[best[3]][1] if best else None

    def pop_best(self, languages: Collection[str], skills: Collection[str]) -> WaitingCall | None:
        """Take the best call an agent with these languages and skills can take.

        No ``now`` is needed: the order of the line is the same at every moment.
        """
        best = self._best_entry(languages, skills)
        if best is None:
            return None
        return self.leave(best[3])

    def rank(self, call_id: str) -> tuple[float, float, int]:
        """The call's sort key in the line: smaller goes first, at every moment."""
        entry = self._require_entry(call_id)[0]
        return entry[0], entry[1], entry[2]

    def score(self, call_id: str, now: float) -> Score:
        return score(self._require(call_id), now, self._config)

    def position(self, call_id: str) -> Position:
        """O(log n): a binary search in the bucket's and the whole line's sorted entries."""
        entry, call = self._require_entry(call_id)
        bucket = (call.language, call.skill)
        in_bucket = self._sorted[bucket].bisect_left(entry) + 1
        overall = self._all_sorted.bisect_left(entry) + 1
        return Position(in_bucket, self._live_count[bucket], overall, len(self._live))

    def ahead_of(self, call_id: str, limit: int) -> list[WaitingCall]:
        """The first ``limit`` calls ahead of this one for the same agents, best first."""
        entry, call = self._require_entry(call_id)
        ordered = self._sorted[(call.language, call.skill)]
        better = islice(ordered.irange(maximum=entry, inclusive=(True, False)), max(0, limit))
        return [self._live[other[3]][1] for other in better]

    def explain(self, call_id: str, now: float, limit: int = 5) -> LineExplanation:
        """Why this call stands where it does: its score, place and who is ahead."""
        call = self._require(call_id)
        mine = score(call, now, self._config)
        ahead = []
        for other in self.ahead_of(call_id, limit):
            theirs = score(other, now, self._config)
            ahead.append(Ahead(other.call_id, theirs, why_ahead(theirs, mine)))
        return LineExplanation(call, mine, self.position(call_id), tuple(ahead))

    def _best_entry(self, languages: Collection[str], skills: Collection[str]) -> _Entry | None:
        best: _Entry | None = None
        heaps = self._heaps
        for bucket in product(languages, skills):
            heap = heaps.get(bucket)
            if not heap:
                continue
            top = self._clean_top(heap)
            if top is not None and (best is None or top < best):
                best = top
        return best

    def _clean_top(self, heap: list[_Entry]) -> _Entry | None:
        live = self._live
        while heap:
            top = heap[0]
            found = live.get(top[3])
            if found is not None and found[0] is top:
                return top
            heapq.heappop(heap)
        return None

    def _compact(self, bucket: Bucket) -> None:
        live = self._live
        heap = [e for e in self._heaps[bucket] if (f := live.get(e[3])) is not None and f[0] is e]
        heapq.heapify(heap)
        self._heaps[bucket] = heap

    def _require_entry(self, call_id: str) -> tuple[_Entry, WaitingCall]:
        found = self._live.get(call_id)
        if found is None:
            raise UnknownCallError(call_id)
        return found

    def _require(self, call_id: str) -> WaitingCall:
        return self._require_entry(call_id)[1]
