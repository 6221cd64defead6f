"""``shenava.logs.format_message`` gives exactly ``twisted.logger.formatEvent``'s text.

It formats with ``str.format_map`` instead of Twisted's ``string.Formatter`` when
the format allows; the journald and JSON shapes use it for every line written.
"""

from __future__ import annotations

import ast
import string
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import LogLevel, formatEvent

from shenava.logs import _plain_fields, format_message, journald_observer

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shenava", "shenava_base", "ami_bridge", "ivr", "routing", "agent_stats",
            "complaints", "recordings", "testpbx")


class _Thing:
    name = "thing"

    def __repr__(self) -> str:
        return "<Thing>"


class _Broken:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")


def _event(format: Any, **fields: Any) -> dict[str, Any]:
    return {"log_format": format, "log_level": LogLevel.info, "log_namespace": "x.y",
            "log_time": 1796516137.25, **fields}


def test_tricky_formats_give_twisteds_text() -> None:
    cases = [
        _event("call {call_id} answered after {wait_s:.1f} s", call_id="1.2", wait_s=4.04),
        _event("{a!r} {a!s} {a!a} {n:>6} {n:<4d}|", a="تماس\u200c", n=42),
        _event("{thing.name} {d[k]} {items[1]} {{literal}}", thing=_Thing(), d={"k": 1}, items=[0, 9]),
        _event("missing {nope}"),
        _event("called {f()}", f=lambda: "yes"),
        _event("called {f()}", **{"f": lambda: "yes", "f()": "not called"}),
        _event("positional {0} {}", x=1),
        _event(b"bytes {x}", x=1),
        _event(None),
        _event("broken {b}", b=_Broken()),
        _event("spec from a field {x:{w}}", x=3, w=5),
        _event("unbalanced { here", x=1),
        _event("unbalanced } here"),
        {"log_format": "flattened {x}", "log_flattened": {"x!:": "1"}, "x": 1},
    ]
    for event in cases:
        assert format_message(event) == formatEvent(dict(event)), event["log_format"]


def _formats_in_source() -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("debug", "info", "warn", "error", "critical", "failure")
                        and node.args and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    found.append(node.args[0].value)
    return found


def test_every_log_format_in_the_source_gives_twisteds_text() -> None:
    formats = _formats_in_source()
    assert len(formats) > 100
    values: list[Any] = ["0912***4567", 3, 2.5, None, ("a", "b")]
    for format in formats:
        names = {field.split(".")[0].split("[")[0].removesuffix("()")
                 for _, field, _, _ in string.Formatter().parse(format) if field}
        for value in values:
            event = _event(format, **{name: value for name in names if name})
            assert format_message(event) == formatEvent(dict(event)), format


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(
    lambda t: t.replace("{", "{{").replace("}", "}}"))
_field = st.tuples(
    st.sampled_from(["a", "b", "n", "f()", "missing"]),
    st.sampled_from(["", "!r", "!s", "!a"]),
    st.sampled_from(["", ":>5", ":.2f", ":d", ":x", ":^7s", ":,"]),
).map(lambda p: "{" + "".join(p) + "}")


@given(st.lists(st.one_of(_text, _field), max_size=6).map("".join),
       st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
       st.one_of(st.integers(), st.text(max_size=5)))
def test_generated_formats_give_twisteds_text(format: str, a: Any, n: Any) -> None:
    event = _event(format, a=a, b=[a], n=n, f=lambda: n)
    assert format_message(event) == formatEvent(dict(event))


def test_an_event_without_control_characters_is_not_copied_and_one_with_them_is() -> None:
    clean = _event("x {a}", a="تماس ها", b=3)
    assert _plain_fields(clean) is clean
    joiner = _event("x {a}", a="تماس\u200cها")  # unprintable, not a control character: kept
    assert _plain_fields(joiner) == joiner
    dirty = _event("x {a}", a="line\nbreak\x1b[2J")
    fixed = _plain_fields(dirty)
    assert fixed is not dirty and fixed["a"] == "line?break?[2J" and dirty["a"] == "line\nbreak\x1b[2J"
    out: list[str] = []

    class _Stream:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    journald_observer(_Stream())(dirty)  # type: ignore[arg-type]
    assert out == ["<6>x.y: x line?break?[2J\n"]
