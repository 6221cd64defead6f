"""The docs' examples against the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from ami_bridge import actions

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_callback_originate_in_the_docs_is_the_one_the_dialer_sends() -> None:
    text = (DOCS / "complaints.md").read_text(encoding="utf-8")
    block = re.search(r"```\nAction: Originate\n(.*?)```", text, re.S)
    assert block is not None
    documented = [line.split(":", 1)[0] for line in block.group(1).splitlines()]
    # as routing.callback_dialer.CallbackDialer._originate builds it
    action = actions.originate_context(
        "PJSIP/101", "shenava-callback", "09121234567", channel_id="shenava-cb-r-1-a1",
        timeout_s=20.0, caller_id='"Callback" <09121234567>',
        variables={"SHENAVA_CALLBACK": "f1", "SHENAVA_ATTEMPT": "1"},
    )
    assert action.name == "Originate"
    assert documented == [name for name, _ in action.headers]


def test_the_key_tag_in_the_development_docs_is_the_statistics_one() -> None:
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    tags = set(re.findall(r"shenava:(\{\w+\}):intervals", text))
    store = (Path(__file__).resolve().parent.parent / "agent_stats" / "store.py").read_text()
    assert tags and tags <= set(re.findall(r"P:(\{\w+\}):intervals", store))
