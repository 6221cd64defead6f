"""The test PBX: an AMI server imitating Asterisk 22 as the transcripts show it.

Usage (tests, demo)::

    world = PbxWorld(clock, PbxOptions(users={"shenava": "s3cret"}, recordings_root=root))
    world.register_phone("PJSIP/101", PhoneScript(answer_after_s=2.0, talk_s=30.0))
    port = listen_testpbx(reactor, 0, world)
    call = world.place_call(CallerScript(number="0912...", answers=("2", "1", "12345#")))
"""

from testpbx.options import AmiRights, PbxOptions
from testpbx.scripts import AfterSpeaking, CallerScript, PhoneMode, PhoneScript
from testpbx.server import AmiServerFactory, AmiServerProtocol, listen_testpbx
from testpbx.service import run, start_testpbx
from testpbx.world import CallHandle, PbxWorld

__all__ = [
    "AfterSpeaking",
    "AmiServerFactory",
    "AmiServerProtocol",
    "CallHandle",
    "CallerScript",
    "AmiRights",
    "PbxOptions",
    "PbxWorld",
    "PhoneMode",
    "PhoneScript",
    "listen_testpbx",
    "run",
    "start_testpbx",
]
