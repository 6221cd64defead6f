"""Words for routing decisions: why one call is ahead of another.

Kept apart from the line and the router so both can say the same thing the same
way, and so an API can return the structured form while the CLI prints text.
"""

from __future__ import annotations

from routing.scoring import Factor, Score, ScorePart


def format_parts(parts: tuple[ScorePart, ...]) -> str:
    return ", ".join(f"{part.points:+.0f} {part.reason}" for part in parts)


def differences(ahead: Score, behind: Score) -> tuple[str, ...]:
    """The factors that put ``ahead`` in front of ``behind`` (and those that
    pulled the other way), largest first, e.g. ``"+150 vulnerable caller"``."""
    reasons: dict[Factor, str] = {}
    for part in (*behind.parts, *ahead.parts):
        reasons[part.factor] = part.reason
    found: list[tuple[float, str]] = []
    for factor in Factor:
        gap = ahead.points_for(factor) - behind.points_for(factor)
        if abs(gap) < 0.5:
            continue
        if factor is Factor.AGEING:
            # Points per second are uniform, so the gap is the longer wait.
            word = "waited longer" if gap > 0 else "waited less"
            found.append((gap, f"{gap:+.0f} {word}"))
        elif factor is Factor.CATEGORY:
            found.append((gap, f"{gap:+.0f} {reasons[factor]} (vs {_category_of(behind)})"))
        else:
            owner = ahead if gap > 0 else behind
            label = next(p.reason for p in owner.parts if p.factor is factor)
            found.append((gap, f"{gap:+.0f} {label}" + ("" if gap > 0 else " (the other call's)")))
    found.sort(key=lambda item: -item[0])
    return tuple(text for _, text in found)


def why_ahead(ahead: Score, behind: Score) -> str:
    """One sentence: why ``ahead`` ranks before ``behind``."""
    gap = ahead.total - behind.total
    diffs = differences(ahead, behind)
    if abs(gap) < 1e-9:
        return f"{ahead.call_id} ties on {ahead.total:.0f} points and has waited longer"
    detail = "; ".join(diffs) if diffs else "same factors"
    return f"{ahead.call_id} leads {behind.call_id} by {gap:.0f} points ({detail})"


def _category_of(score: Score) -> str:
    return next(p.reason for p in score.parts if p.factor is Factor.CATEGORY)
