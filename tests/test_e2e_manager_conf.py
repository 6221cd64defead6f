"""The daemon against the test PBX applying ``manager.conf`` as Asterisk does.

Every end-to-end test logs in as the shipped ``etc/asterisk/manager.conf``
user (see ``tests/e2e_harness.py``): its read classes and event filters decide
which events the daemon gets, its write classes which actions run. These
tests show that this bites: a snippet missing a class the daemon needs stops
it, and the shipped one carries a call through the IVR to an agent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from routing.events import CallAnswered
from shenava.check_config import ami_rights
from testpbx.options import PbxOptions
from testpbx.scripts import CallerScript, PhoneScript
from tests.e2e_harness import E2E, SHIPPED_MANAGER_CONF, e2e_config


def _options(tmp_path: Path, manager_conf: Path) -> PbxOptions:
    config = e2e_config()
    return PbxOptions(
        users={config.ami.username: config.ami.secret},
        rights={config.ami.username: ami_rights(manager_conf, config.ami.username)},
        recordings_root=tmp_path / "recordings",
        support_context=config.site.support_context,
    )


def _edited_conf(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "manager.conf"
    shutil.copy(SHIPPED_MANAGER_CONF, path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_shipped_user_follows_a_call_from_the_ivr_to_an_agent(tmp_path: Path) -> None:
    h = E2E.build(tmp_path, pbx=_options(tmp_path, SHIPPED_MANAGER_CONF))
    try:
        h.phone("PJSIP/101", PhoneScript(answer_after_s=1.0, talk_s=10.0))
        h.log_in("a1")
        call = h.call(CallerScript(number="09120000077", answers=("1", "3")))
        h.run_until(lambda: h.events(CallAnswered, call))
        (answered,) = h.events(CallAnswered, call)
        assert answered.agent_id == "a1"
        # The session's own answers (list events) pass the filters; the shipped
        # filters drop DTMFBegin and the daemon does not need it.
        assert [m.event for m in h.server_sent() if m.event == "DTMFBegin"] == []
        assert any(m.event == "DTMFEnd" for m in h.server_sent())
    finally:
        h.stop()


def test_without_reporting_or_system_in_write_the_daemon_cannot_resync(tmp_path: Path) -> None:
    """CoreShowChannels (resync after every login) needs reporting or system."""
    conf = _edited_conf(tmp_path, "write = call,agi,originate,reporting", "write = call,agi,originate")
    h = E2E.build(tmp_path, pbx=_options(tmp_path, conf), connect=False)
    try:
        h.app.start(serve_http=False)
        h.advance(20.0)
        assert h.app.connection.protocol is None
        refused = [m for m in h.server_sent() if m.get("Message") == "Permission denied"]
        assert refused, "the test PBX should have refused CoreShowChannels"
        assert len(h.actions("CoreShowChannels")) >= 2  # refused, retried with backoff
    finally:
        h.stop()


@pytest.mark.parametrize(
    ("old", "new", "missing"),
    [
        ("read = call,agi,dtmf,system", "read = call,dtmf,system", "AsyncAGIStart"),
        ("eventfilter = !Event: Newexten", "eventfilter = !Event: AsyncAGI", "AsyncAGIStart"),
    ],
)
def test_a_snippet_that_hides_the_ivr_events_leaves_callers_unanswered(
    tmp_path: Path, old: str, new: str, missing: str
) -> None:
    conf = _edited_conf(tmp_path, old, new)
    h = E2E.build(tmp_path, pbx=_options(tmp_path, conf))
    try:
        h.call(CallerScript(number="09120000078", answers=("1", "3")))
        h.advance(10.0)
        assert not any(m.event == missing for m in h.server_sent())
        # The daemon never learns the caller is waiting in the IVR: no menu runs.
        assert h.actions("AGI") == []
        assert h.outcomes == []
    finally:
        h.stop()


def test_shenava_testpbx_refuses_a_manager_conf_without_the_user(capsys: pytest.CaptureFixture[str]) -> None:
    from shenava.cli import main

    code = main(["testpbx", "--port", "0", "--manager-conf", str(SHIPPED_MANAGER_CONF),
                 "--username", "nobody"])
    assert code == 2
    assert "no AMI user [nobody]" in capsys.readouterr().err
