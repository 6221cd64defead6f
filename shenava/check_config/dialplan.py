"""``extensions.conf``: the support line, the callback and the connect contexts, matched like Asterisk 22."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shenava.asterisk_conf import (
    AsteriskConf,
    ConfSection,
    Origin,
)
from shenava.check_config.findings import Finding, _error, _ok, _warn
from shenava.config import Config


@dataclass(frozen=True)
class Step:
    """One dialplan priority: ``exten => 101,2,Dial(PJSIP/101,20,gm)``."""

    extension: str
    priority: int
    app: str
    args: str
    origin: Origin


_PRIORITY_RE = re.compile(r"^(n|\d+)(?:\+(\d+))?(?:\(([^)]*)\))?$", re.IGNORECASE)


def dialplan_steps(context: ConfSection) -> list[Step]:
    """The context's steps ordered by extension, then priority (``n`` counted on)."""
    steps: list[Step] = []
    current: str | None = None
    last_priority = 0
    for item in context.items:
        name = item.name.lower()
        if name not in ("exten", "same"):
            continue
        fields = item.value.split(",", 2) if name == "exten" else ["", *item.value.split(",", 1)]
        if len(fields) < 3:
            continue
        extension, priority_text, command = (f.strip() for f in fields)
        if name == "exten":
            if extension != current:
                last_priority = 0
            current = extension
        if current is None:
            continue
        match = _PRIORITY_RE.match(priority_text)
        if not match:  # 'hint' and other non-steps
            continue
        base = last_priority + 1 if match.group(1).lower() == "n" else int(match.group(1))
        last_priority = base + int(match.group(2) or 0)
        app, args = split_application(command)
        steps.append(Step(current, last_priority, app, args, item.origin))
    return sorted(steps, key=lambda s: (s.extension, s.priority))


def split_application(command: str) -> tuple[str, str]:
    """``Dial(PJSIP/101,20,gm)`` -> ``("dial", "PJSIP/101,20,gm")``; names lower-cased."""
    command = command.strip()
    if "(" in command:
        app, _, rest = command.partition("(")
        return app.strip().lower(), rest[:-1] if rest.endswith(")") else rest
    app, _, args = command.partition(",")
    return app.strip().lower(), args


def split_arguments(args: str) -> list[str]:
    """Split application arguments at top-level commas (not inside ${...}, $[...], (...))."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in args:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def dial_options(args: str) -> set[str]:
    """The option letters of a Dial: ``m(default)gU(sub)`` -> ``{"m", "g", "U"}``."""
    parts = split_arguments(args)
    options = parts[2] if len(parts) > 2 else ""
    letters: set[str] = set()
    depth = 0
    for char in options:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and char.isalpha():
            letters.add(char)
    return letters


def _is_async_agi(step: Step) -> bool:
    return step.app == "agi" and split_arguments(step.args)[0].lower() == "agi:async"


def _context_steps(dialplan: AsteriskConf, name: str, seen: tuple[str, ...] = ()) -> list[Step] | None:
    """Steps of context ``name`` and the contexts it includes; None if it does not exist."""
    context = dialplan.section(name)
    if context is None:
        return None
    steps = dialplan_steps(context)
    for include in context.get_all("include"):
        target = include.value.split(",", 1)[0].strip()
        if target not in seen and len(seen) < 10:
            steps.extend(_context_steps(dialplan, target, (*seen, name)) or [])
    return steps


def check_dialplan(config: Config, dialplan: AsteriskConf) -> list[Finding]:
    return [
        *_check_support_context(config.site.support_context, dialplan),
        *_check_callback_context(config.site.callback_context, dialplan),
        *_check_connect_context(config.site.connect_context, dialplan),
    ]


def _check_support_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_error(
            "dialplan.support_missing",
            f"no context [{name}] (site.support_context): add the [shenava-complaints] context "
            "of etc/asterisk/extensions.conf and send the support line's calls to it",
            dialplan.path.name,
        )]
    agi = [s for s in steps if _is_async_agi(s)]
    if not agi:
        return [_error(
            "dialplan.support_no_agi",
            f"[{name}] never runs AGI(agi:async): the calls would not reach Shenava's IVR",
            dialplan.section(name).origin,  # type: ignore[union-attr]
        )]
    findings = [_ok("dialplan.support", f"[{name}] hands calls to Shenava with AGI(agi:async)", agi[0].origin)]
    answered = any(
        s.app == "answer" and s.extension == agi[0].extension and s.priority < agi[0].priority for s in steps
    )
    if not answered:
        findings.append(_warn(
            "dialplan.support_no_answer",
            f"[{name}] runs AGI(agi:async) without Answer() first: prompts and digits need an answered channel",
            agi[0].origin,
        ))
    return findings


def extension_matches(pattern: str, number: str) -> bool:
    """Does extension ``pattern`` match ``number``? main/pbx.c _extension_match_core(), E_MATCH.

    ``_`` starts a pattern: X, Z, N, ``[...]`` (characters and ranges; ``+`` is an
    ordinary character there), ``.`` (one or more), ``!`` (zero or more);
    ``-`` is ignored on both sides; ``/`` starts a caller ID match (not checked)."""
    if not pattern.startswith("_"):
        return pattern.split("/", 1)[0].replace("-", "") == number.replace("-", "")
    p, d = pattern[1:], number.replace("-", "")
    i = j = 0
    while True:
        while i < len(p) and p[i] == "-":
            i += 1
        if j >= len(d) or i >= len(p) or p[i] == "/":
            break
        char, digit = p[i], d[j]
        if char == "[":
            end = p.find("]", i + 1)
            if end < 0:
                return False  # "Wrong usage of [] in the extension"
            members, k = p[i + 1:end], 0
            found = not members  # an empty set is skipped
            while k < len(members) and not found:
                if k + 2 < len(members) and members[k + 1] == "-":
                    found = members[k] <= digit <= members[k + 2]
                    k += 3
                else:
                    found = members[k] == digit
                    k += 1
            if not found:
                return False
            i = end
            if not members:
                i += 1
                continue
        elif char in "nN":
            if not "2" <= digit <= "9":
                return False
        elif char in "xX":
            if not "0" <= digit <= "9":
                return False
        elif char in "zZ":
            if not "1" <= digit <= "9":
                return False
        elif char in ".!":
            return True
        elif char != digit:
            return False
        i += 1
        j += 1
    if j < len(d):
        return False
    return i >= len(p) or p[i] in "/!"


CALLBACK_SAMPLE_NUMBERS = ("09121234567", "+989121234567")
"""Customer numbers as routing.callbacks.normalize_number() leaves them (``+`` and 3 to 20 digits)."""


def _check_callback_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_error(
            "dialplan.callback_missing",
            f"no context [{name}] (site.callback_context): callbacks originate the agent's phone into it with the customer's "
            "number as the extension (Asterisk answers \"Extension does not exist.\"); add the "
            "[shenava-callback] context of etc/asterisk/extensions.conf",
            dialplan.path.name,
        )]
    origin = dialplan.section(name).origin  # type: ignore[union-attr]
    findings: list[Finding] = []
    extensions = list(dict.fromkeys(s.extension for s in steps))
    for number in CALLBACK_SAMPLE_NUMBERS:
        matching = [e for e in extensions if extension_matches(e, number)]
        if not matching:
            findings.append(_error(
                "dialplan.callback_no_match",
                f"no extension of [{name}] matches a customer number like {number} "
                "(use a pattern such as _[+0-9]X.)", origin,
            ))
            continue
        # Asterisk prefers the most specific pattern; any matching one must dial.
        if not any(s.app == "dial" for s in steps if s.extension in matching):
            findings.append(_error(
                "dialplan.callback_no_dial",
                f"[{name}] has no Dial() for {number}: the customer is never called", origin,
            ))
    if not findings:
        findings.append(_ok("dialplan.callback", f"[{name}] dials the customer's number", origin))
    return findings


def _check_connect_context(name: str, dialplan: AsteriskConf) -> list[Finding]:
    """The Redirect way of connecting (transcript 44): optional, not used by this release."""
    steps = _context_steps(dialplan, name)
    if steps is None:
        return [_ok(
            "dialplan.connect_absent",
            f"no context [{name}] (site.connect_context): fine, this release connects callers by "
            "Originate and Bridge and does not use it",
            dialplan.path.name,
        )]
    dials = [s for s in steps if s.app == "dial"]
    if not dials:
        origin = dialplan.section(name).origin  # type: ignore[union-attr]
        return [_warn("dialplan.connect_no_dial", f"[{name}] has no Dial(): it cannot ring the agent", origin)]
    findings: list[Finding] = []
    dial = dials[0]
    options = dial_options(dial.args)
    if "g" not in options:
        findings.append(_warn(
            "dialplan.connect_no_g",
            f"[{name}] Dial({dial.args}) lacks option g: when the agent hangs up the caller is "
            "hung up too and cannot come back to Shenava (goodbye, a second agent after a no-answer)",
            dial.origin,
        ))
    if "m" not in options:
        findings.append(_warn(
            "dialplan.connect_no_m",
            f"[{name}] Dial({dial.args}) lacks option m: the caller hears ringing instead of music",
            dial.origin,
        ))
    back = [s for s in steps if s.extension == dial.extension and s.priority > dial.priority and _is_async_agi(s)]
    if not back:
        findings.append(_warn(
            "dialplan.connect_no_agi",
            f"[{name}] does not run AGI(agi:async) after Dial(): the caller never returns to Shenava",
            dial.origin,
        ))
    if not findings:
        findings.append(_ok(
            "dialplan.connect", f"[{name}] dials with g and m, then returns to AGI(agi:async)", dial.origin,
        ))
    return findings
