"""``manager.conf``'s event filters, parsed like Asterisk's manager_add_filter(): none may drop an event Shenava needs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shenava.asterisk_conf import (
    ConfItem,
    ConfSection,
    Origin,
)
from shenava.check_config.ami_classes import NEEDED_EVENTS, NOISE_EVENTS, parse_classes
from shenava.check_config.findings import Finding, Severity, _error, _ok, _warn


@dataclass(frozen=True)
class EventFilter:
    """One ``eventfilter`` line as Asterisk's manager_add_filter() reads it.

    ``matches(event)`` is True when the filter certainly matches every such
    event, False when it certainly matches none, None when it depends on the
    event's other headers (a header(), a pattern on the whole text that does
    not start with ``Event:``)."""

    exclude: bool
    origin: Origin
    text: str
    regex: re.Pattern[str] | None = None
    event_name: str | None = None
    partial: bool = False
    """It also looks at other headers: it cannot drop or admit an event by name alone."""

    def matches(self, event: str) -> bool | None:
        if self.event_name is not None and self.event_name != event:
            return False  # name(): an exact, case-sensitive comparison (a hash of the name)
        if self.partial:
            return None
        if self.regex is None:
            return True  # name() alone, or no criteria at all
        if self.regex.search(f"Event: {event}\r\n") is not None:
            return True
        # The whole event text is searched; a pattern starting with "Event:" can
        # only match that line (no header of the events Shenava needs ends in "Event").
        return False if self.regex.pattern.lstrip("^").startswith("Event:") else None


_FILTER_METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")


def parse_event_filters(user: ConfSection) -> tuple[list[EventFilter], list[Finding]]:
    filters: list[EventFilter] = []
    findings: list[Finding] = []
    for item in user.items:
        # Asterisk takes every option whose name begins with "eventfilter" (__init_manager).
        if not item.name.startswith("eventfilter"):
            continue
        parsed = _parse_filter(item)
        if isinstance(parsed, str):
            findings.append(_warn(
                "manager.filter_ignored",
                f"{item.name} = {item.value}: {parsed}; Asterisk ignores this filter (with a warning in its log)",
                item.origin,
            ))
        else:
            filters.append(parsed)
    return filters, findings


def _parse_filter(item: ConfItem) -> EventFilter | str:
    """main/manager.c manager_add_filter(): the filter, or why Asterisk refuses it."""
    pattern = item.value
    exclude = pattern.startswith("!")
    if exclude:
        pattern = pattern[1:]
    text = f"{item.name} = {item.value}".strip()
    if "(" not in item.name:
        if not pattern:
            return "a legacy filter needs a pattern"
        try:
            legacy = re.compile(pattern)  # POSIX extended (REG_EXTENDED) there; close enough here
        except re.error as exc:
            return f"the regular expression does not compile ({exc})"
        return EventFilter(exclude, item.origin, text, regex=legacy)
    inner = item.name.split("(", 1)[1].strip()
    if not inner.endswith(")"):
        return "the filter options are not formatted correctly"
    event_name = header = None
    method = "none"
    found = False
    for option in (o for o in re.split(r"[ ,)]+", inner) if o):
        key, paren, value = option.partition("(")
        value = value.strip()
        if not paren or not value:
            return f"option {option!r} is not formatted correctly"
        if key.startswith("action"):
            if value not in ("include", "exclude"):
                return f"action {value!r} is unknown"
            exclude = value == "exclude"
        elif key.startswith("name"):
            event_name = value
        elif key.startswith("header"):
            header = value
        elif key.startswith("method"):
            if value not in _FILTER_METHODS:
                return f"method {value!r} is unknown"
            method = value
        else:
            return f"option {option!r} is unknown"
        found = True
    if not found:
        return "no action, name, header or method option"
    if not pattern and method != "none":
        return f"method {method} needs a pattern"
    if pattern and method == "none":
        return "a pattern needs a method (e.g. method(regex))"
    if event_name is None and header is None and method == "none":
        return "no name or header option and no pattern"
    regex: re.Pattern[str] | None = None
    if pattern and header is None and method == "regex":
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            return f"the regular expression does not compile ({exc})"
    partial = header is not None or (bool(pattern) and regex is None)
    return EventFilter(exclude, item.origin, text, regex=regex, event_name=event_name, partial=partial)


def event_passes(event: str, filters: Sequence[EventFilter]) -> bool | None:
    """manager.c should_send_event(): with include filters only what one of them
    matches passes; then any matching exclude filter drops it. None: cannot tell."""
    includes = [f.matches(event) for f in filters if not f.exclude]
    excludes = [f.matches(event) for f in filters if f.exclude]
    if includes and not any(includes):
        return None if None in includes else False
    if any(excludes):
        return False
    return None if None in excludes else True


def _check_event_filters(user: ConfSection) -> list[Finding]:
    filters, findings = parse_event_filters(user)
    read_item = user.get("read")
    read = parse_classes(read_item.value) if read_item else set()
    unsure: list[str] = []
    for event in NEEDED_EVENTS:
        passes = event_passes(event, filters)
        if passes is None:
            unsure.append(event)
        elif not passes:
            culprit = next((f for f in filters if f.exclude and f.matches(event)), None)
            at = culprit.origin if culprit else user.origin
            because = f"by {culprit.text!r}" if culprit else "(no include filter admits it)"
            findings.append(_error(
                "manager.filter_drops_needed", f"event {event} is filtered out {because}; Shenava needs it", at,
            ))
    if unsure:
        findings.append(_warn(
            "manager.filter_unverified",
            f"[{user.name}] has event filters that look at more than the event name: cannot tell whether "
            f"they let through {', '.join(unsure)}, which Shenava needs", user.origin,
        ))
    noisy = [
        event for event, cls in NOISE_EVENTS.items()
        if ("all" in read or cls in read) and event_passes(event, filters)
    ]
    if noisy:
        findings.append(_warn(
            "manager.filter_missing",
            f"[{user.name}] still receives events Shenava does not use: {', '.join(noisy)}; add "
            + ", ".join(f"eventfilter = !Event: {e}" for e in noisy[:3]) + (" ..." if len(noisy) > 3 else ""),
            user.origin,
        ))
    elif not any(f.severity is not Severity.OK for f in findings):
        findings.append(_ok("manager.filters", "event filters drop the noise and keep what Shenava needs", user.origin))
    return findings
