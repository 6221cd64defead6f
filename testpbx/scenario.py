"""A scripted traffic plan for ``shenava testpbx --scenario``, and a report of every caller's fate.

Tests and benchmarks that run the daemon as a real process (to kill it with
SIGKILL, to run two of them) cannot reach into the test PBX's world; they
give it a plan instead and read what happened to each caller afterwards.

The plan is JSON::

    {"phones": {"PJSIP/101": {"mode": "answer", "answer_after_s": 2, "talk_s": 20}},
     "callers": [{"at": 0.5, "number": "09120000001", "answers": ["1", "3"],
                  "patience_s": 600, "talk_s": 10}],
     "steady": {"start_s": 1, "every_s": 2.0, "count": 30,
                "caller": {"answers": ["1", "3"], "talk_s": 8}}}

``callers`` are placed at ``at`` seconds after the PBX starts; ``steady``
places ``count`` callers ``every_s`` apart (numbers ``0912`` + a counter). A
phone's ``"hold_until": "/some/file"`` keeps its calls up past ``talk_s`` until
that file exists (a test releases them once it has seen what it waited for,
however loaded the machine). The
report (JSON lines, one per caller, written when their call ends) says when
they were placed, whether an agent was bridged to them, and when they ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ami_bridge.codec import Header
from testpbx.scripts import AfterSpeaking, CallerScript, PhoneMode, PhoneScript
from testpbx.world import CallHandle, PbxWorld


@dataclass(frozen=True, slots=True)
class Scenario:
    phones: dict[str, PhoneScript] = field(default_factory=dict)
    callers: list[tuple[float, CallerScript]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    """A caller's ``tag`` from the plan, by number: copied into the report."""


def _caller(raw: dict[str, Any], number: str | None = None) -> CallerScript:
    return CallerScript(
        number=str(raw.get("number") or number or "09120000000"),
        language=raw.get("language", "fa"),
        # By default: Persian, then an agent; none when answering by prompt
        # (a positional "1" would book a callback at the hold options).
        answers=tuple(str(a) for a in raw.get("answers", () if raw.get("menu_answers") else ("1", "3"))),
        answer_delay_s=float(raw.get("answer_delay_s", 1.0)),
        patience_s=None if raw.get("patience_s") is None else float(raw["patience_s"]),
        hangup_after_s=None if raw.get("hangup_after_s") is None else float(raw["hangup_after_s"]),
        talk_s=None if raw.get("talk_s") is None else float(raw["talk_s"]),
        menu_answers={str(k): str(v) for k, v in raw.get("menu_answers", {}).items()},
        audio=_audio(raw.get("audio")),
        after_speaking=AfterSpeaking(raw.get("after_speaking", "hash")),
    )


def _audio(value: Any) -> Path | None:
    """``"audio": "sample"`` is the recording shipped with the test PBX; else a WAV path."""
    if value is None:
        return None
    if value == "sample":
        from testpbx.audio import SAMPLE_RECORDING

        return SAMPLE_RECORDING
    return Path(str(value))


def parse_scenario(raw: dict[str, Any]) -> Scenario:
    phones = {
        endpoint: PhoneScript(
            mode=PhoneMode(spec.get("mode", "answer")),
            answer_after_s=float(spec.get("answer_after_s", 2.0)),
            talk_s=None if spec.get("talk_s") is None else float(spec["talk_s"]),
            hold_until=None if spec.get("hold_until") is None else Path(str(spec["hold_until"])),
        )
        for endpoint, spec in raw.get("phones", {}).items()
    }
    callers = [(float(c.get("at", 0.0)), _caller(c)) for c in raw.get("callers", [])]
    tags = {str(c["number"]): str(c["tag"]) for c in raw.get("callers", []) if c.get("tag") and c.get("number")}
    steady = raw.get("steady")
    if steady:
        start, every = float(steady.get("start_s", 0.0)), float(steady["every_s"])
        template = dict(steady.get("caller", {}))
        for n in range(int(steady["count"])):
            callers.append((start + n * every, _caller(template, f"0912{n:07d}")))
    return Scenario(phones, sorted(callers, key=lambda item: item[0]), tags)


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(json.loads(path.read_text(encoding="utf-8")))


class ScenarioRun:
    """Places the plan's callers on ``world`` and reports each one's end to ``report``."""

    def __init__(self, world: PbxWorld, scenario: Scenario, report: IO[str] | None) -> None:
        self.world = world
        self.scenario = scenario
        self.report = report
        self.calls: dict[str, dict[str, Any]] = {}
        self._by_channel: dict[str, str] = {}

    def start(self) -> None:
        for endpoint, phone in self.scenario.phones.items():
            self.world.register_phone(endpoint, phone)
        self.world.subscribe(self._on_event)
        for at, caller in self.scenario.callers:
            self.world.later(None, at, self._place, caller)

    def _place(self, script: CallerScript) -> None:
        handle: CallHandle = self.world.place_call(script)
        self.calls[handle.uniqueid] = {
            "uniqueid": handle.uniqueid, "number": script.number,
            "tag": self.scenario.tags.get(script.number),
            "placed_at": self.world.now(), "bridged_at": None, "ended_at": None,
            # What the caller heard and did, as the PBX saw it (for reconciliations):
            "queued_at": None,  # the first hold command (music, position, options)
            "references": [],  # digits read after "your-reference"
            "recorded": 0,  # RECORD FILE commands that ended
            "saved": False,  # heard "message-saved"
            "commands": 0,
        }
        self._by_channel[handle.agi_channel.name] = handle.uniqueid

    def _on_event(self, headers: list[Header]) -> None:
        fields = dict(headers)
        event = fields.get("Event")
        if event not in ("BridgeEnter", "Hangup", "AGIExecStart", "AGIExecEnd"):
            return
        uniqueid = self._by_channel.get(fields.get("Channel", ""))
        if uniqueid is None:
            return
        call = self.calls[uniqueid]
        if event == "AGIExecStart":
            self._command(call, fields.get("Command", ""))
        elif event == "AGIExecEnd":
            if fields.get("Command", "").upper().startswith("RECORD FILE"):
                call["recorded"] += 1
        elif event == "BridgeEnter" and call["bridged_at"] is None:
            call["bridged_at"] = self.world.now()
        elif event == "Hangup":
            call["ended_at"] = self.world.now()
            self._by_channel.pop(fields.get("Channel", ""), None)
            call.pop("_after_reference", None)
            if self.report is not None:
                self.report.write(json.dumps(call) + "\n")
                self.report.flush()

    def _command(self, call: dict[str, Any], line: str) -> None:
        call["commands"] += 1
        words = line.split()
        verb = " ".join(words[:2]).upper()
        prompt = words[2].rsplit("/", 1)[-1] if len(words) > 2 else ""
        after_reference = call.pop("_after_reference", False)
        if call["queued_at"] is None and (
            "MusicOnHold" in line or "/hold-position" in line or prompt == "hold-options"
        ):
            call["queued_at"] = self.world.now()
        if verb == "STREAM FILE" and prompt == "your-reference":
            call["_after_reference"] = True
        elif verb == "EXEC PLAYBACK" and len(words) > 2 and "/your-reference&digits/" in words[2]:
            # the reference read as one Playback: your-reference&digits/7&digits/4...
            files = words[2].split("&")
            call["references"].append("".join(f.removeprefix("digits/") for f in files[1:]))
        elif verb == "STREAM FILE" and prompt == "message-saved":
            call["saved"] = True
        elif verb == "SAY DIGITS" and after_reference and len(words) > 2:
            call["references"].append(words[2])


__all__ = ["Scenario", "ScenarioRun", "load_scenario", "parse_scenario"]
