"""AGI commands per caller, path by path: the daemon against the test PBX in virtual time.

    .venv/bin/python benchmarks/agi_per_caller.py

Each scenario places one scripted caller (``tests/e2e_harness.py``: the whole
daemon, the test PBX applying the shipped ``etc/asterisk/manager.conf``, a
virtual clock) and counts the ``AGI`` actions the daemon sent for that
caller's channel:

- ``complaint_fa``/``complaint_en``: language, new complaint (category,
  urgent, care, account read back and confirmed), up to and including the
  first ``EXEC MusicOnHold`` of the hold (no agent is logged in);
- ``agent_*``: language, 3 (an agent), up to the first music;
- ``voicemail_*``, ``callback_*``, ``status_*``: to the caller's hang-up;
- ``hold_announcement``: one announcement on hold, from the end of one
  ``EXEC MusicOnHold`` to the next (position, options, music);
- ``preset_en``: the dialplan set ``SHENAVA_LANG=en`` (no language menu),
  then 3 (an agent), up to the first music.

Nothing is timed: the figures are counts, the same on every run and machine.
Run it in another checkout (``cd other && python benchmarks/agi_per_caller.py``)
to compare. The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUMBER = "09121234567"
LANG_KEY = {"fa": "1", "en": "2"}


def _music_at(commands: list[str], nth: int) -> int | None:
    seen = 0
    for index, command in enumerate(commands):
        if command.startswith("EXEC MusicOnHold"):
            seen += 1
            if seen == nth:
                return index
    return None


def measure() -> dict[str, int]:
    from shenava.demo import luhn_complete
    from testpbx.scripts import CallerScript
    from tests.e2e_harness import E2E

    account = luhn_complete("123456789")
    counts: dict[str, int] = {}

    def run(name: str, script: CallerScript, until: Callable[[E2E, object], int | None]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            h = E2E.build(Path(tmp))
            try:
                call = h.call(script)
                h.run_until(lambda: until(h, call) is not None, limit_s=400.0)
                end = until(h, call)
                assert end is not None
                counts[name] = end
            finally:
                h.stop()

    def to_music(h: E2E, call: object) -> int | None:
        at = _music_at(h.agi_commands(call), 1)  # type: ignore[arg-type]
        return None if at is None else at + 1

    def to_hang_up(h: E2E, call: object) -> int | None:
        return None if h.alive(call) else len(h.agi_commands(call))  # type: ignore[arg-type]

    def one_announcement(h: E2E, call: object) -> int | None:
        commands = h.agi_commands(call)  # type: ignore[arg-type]
        first, second = _music_at(commands, 1), _music_at(commands, 2)
        return None if first is None or second is None else second - first

    for lang in ("fa", "en"):
        def caller(*answers: str, lang: str = lang) -> CallerScript:
            return CallerScript(number=NUMBER, language=lang, answers=(LANG_KEY[lang], *answers))

        run(f"complaint_{lang}", caller("1", "3", "1", "2", account + "#", "1"), to_music)
        run(f"agent_{lang}", caller("3"), to_music)
        run(f"voicemail_{lang}", caller("4"), to_hang_up)
        run(f"callback_{lang}", caller("5", "1"), to_hang_up)
        run(f"status_{lang}", caller("2", "1234567#", "1", ""), to_hang_up)
    run("hold_announcement", CallerScript(number=NUMBER, answers=("1", "3", "")), one_announcement)
    run("preset_en", CallerScript(number=NUMBER, variables={"SHENAVA_LANG": "en"}, answers=("3",)),
        to_music)
    return counts


def main() -> None:
    counts = measure()
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"{name:<{width}}  {count}")
    print(json.dumps({"bench": "agi_per_caller", **counts}))


if __name__ == "__main__":
    main()
