"""shenava testpbx's load options: callers at a steady rate, agent phones that answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from ami_bridge.testpbx.options import PbxOptions
from ami_bridge.testpbx.world import PbxWorld
from shenava.cli import build_parser
from shenava.testpbx_cmd import AGENT_ENDPOINT_BASE, CallerLoad


def test_the_options_parse() -> None:
    args = build_parser().parse_args([
        "testpbx", "--call-rate", "12.5", "--caller-mix", "agents", "--patience-s", "40",
        "--agents", "300", "--talk-s", "20",
    ])
    assert (args.call_rate, args.caller_mix, args.patience_s, args.agents, args.talk_s) == (
        12.5, "agents", 40.0, 300, 20.0)
    defaults = build_parser().parse_args(["testpbx"])
    assert (defaults.call_rate, defaults.agents) == (0.0, 0)


@pytest.mark.parametrize("mix", ["demo", "agents", "complaints"])
def test_callers_arrive_at_the_rate_and_agent_phones_answer(tmp_path: Path, mix: str) -> None:
    clock = Clock()
    world = PbxWorld(clock, PbxOptions(users={"u": "p"}, recordings_root=tmp_path))
    load = CallerLoad(clock, world, call_rate=4.0, caller_mix=mix, patience_s=33.0, agents=5,
                      talk_s=12.0)
    assert world.phone(f"PJSIP/{AGENT_ENDPOINT_BASE + 4}") is not None
    assert world.phone(f"PJSIP/{AGENT_ENDPOINT_BASE + 5}") is None
    assert world.phone(f"PJSIP/{AGENT_ENDPOINT_BASE}").talk_s == 12.0  # type: ignore[union-attr]
    load.start()
    for _ in range(600):  # a minute, a tenth of a second at a time
        clock.advance(0.1)
    assert 180 <= load.placed <= 300  # Poisson at 4/s for 60 s: 240 expected
    assert {load.next_script().patience_s for _ in range(20)} == {33.0}
    load.stop()
    placed = load.placed
    clock.advance(10)
    assert load.placed == placed


def test_a_late_reactor_does_not_lower_the_rate(tmp_path: Path) -> None:
    """Under load every timer fires late; the arrivals keep their own schedule."""
    clock = Clock()
    world = PbxWorld(clock, PbxOptions(users={"u": "p"}, recordings_root=tmp_path))
    load = CallerLoad(clock, world, call_rate=100.0, caller_mix="demo", patience_s=30.0)
    load.start()
    for _ in range(200):  # 20 s, the reactor turning only every 0.1 s (10 ms between calls)
        clock.advance(0.1)
    assert 1800 <= load.placed <= 2200  # Poisson at 100/s for 20 s: 2,000 expected
    load.stop()
