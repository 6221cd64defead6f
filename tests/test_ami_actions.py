"""The typed action builders: what Asterisk will read from them."""

from __future__ import annotations

import pytest

from ami_bridge import actions
from ami_bridge.errors import InvalidVariableError


def _variables(action: actions.Action) -> list[str]:
    return [value for name, value in action.headers if name == "Variable"]


def test_originate_variables_are_one_header_each() -> None:
    action = actions.originate_context(
        "Local/09121234567@shenava-callback",
        "shenava-callback",
        "09121234567",
        variables={"SHENAVA_CALLBACK": "cb-7f3a", "SHENAVA_ATTEMPT": "2", "__INHERITED": ""},
    )
    assert action.name == "Originate"
    assert _variables(action) == ["SHENAVA_CALLBACK=cb-7f3a", "SHENAVA_ATTEMPT=2", "__INHERITED="]


@pytest.mark.parametrize(
    "value",
    ["a,b", 'say "hi"', "C:\\temp"],
)
def test_values_asterisk_would_cut_or_strip_are_refused(value: str) -> None:
    with pytest.raises(InvalidVariableError) as caught:
        actions.originate_application(
            "PJSIP/101", "Wait", "7200", variables={"SHENAVA_CALL": value}
        )
    assert caught.value.name == "SHENAVA_CALL"
    assert "commas" in str(caught.value)


@pytest.mark.parametrize("name", ["", "A=B", "A,B", "1ABC", "with space"])
def test_names_that_are_not_dialplan_variables_are_refused(name: str) -> None:
    with pytest.raises(InvalidVariableError):
        actions.variable_item(name, "x")
