"""Asterisk's AMI permission classes and the events Shenava needs or filters out.

The vocabulary the ``manager.conf`` checks and the event-filter checks share,
read the way main/manager.c reads it.
"""

from __future__ import annotations

# Asterisk's manager permission classes, in the order of main/manager.c's perms[]
# ("all" is INT_MAX: every class; "none" is 0).
ASTERISK_CLASSES = (
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message", "all", "none",
)
NEEDED_EVENTS = {
    # event: its class (the "Privilege:" line of the real Asterisk 22 captures;
    # Rename: CALL in Asterisk's AMI event docs). manager.c process_events()
    # sends an event only if the user's read classes include its class.
    "Newchannel": "call", "Newstate": "call", "Hangup": "call", "NewCallerid": "call",
    "Rename": "call", "DialBegin": "call", "DialEnd": "call", "BridgeEnter": "call",
    "BridgeLeave": "call", "OriginateResponse": "call", "DTMFEnd": "dtmf",
    "AsyncAGIStart": "agi", "AsyncAGIExec": "agi", "AsyncAGIEnd": "agi",
}
"""Events the daemon consumes; a filter must never drop one of them.

The answers to ``CoreShowChannels`` (``CoreShowChannel``...) and ``Status``
are not here: Asterisk writes list events straight to the session that asked
(``astman_append``), past the read classes and the event filters."""
REQUIRED_READ = {
    "call": "channel, dial, bridge, hang-up and OriginateResponse events",
    "agi": "AsyncAGIStart/Exec/End: the IVR",
    "dtmf": "DTMFEnd: digits typed ahead of a menu",
}
REQUIRED_WRITE: dict[tuple[str, ...], str] = {
    # any one of the classes grants the action (manager.c process_message():
    # writeperm & the action's classes)
    ("call",): "Bridge and Hangup",
    ("agi",): "the AGI action (AsyncAGI commands)",
    ("originate",): "Originate: the agent's leg and callbacks",
    ("reporting", "system"): "CoreShowChannels after every login",
}
SUGGESTED_WRITE = "call,agi,originate,reporting"
SUGGESTED_READ = "call,agi,dtmf,system"
NOISE_EVENTS = {
    # event: the read class that carries it (no point filtering what is not sent)
    "Newexten": "dialplan", "VarSet": "dialplan", "DeviceStateChange": "call",
    "NewConnectedLine": "call", "NewAccountCode": "call", "HangupRequest": "call",
    "SoftHangupRequest": "call", "DialState": "call", "AGIExecStart": "agi",
    "AGIExecEnd": "agi", "DTMFBegin": "dtmf", "RTCPSent": "reporting",
    "RTCPReceived": "reporting", "ChannelTalkingStart": "call", "ChannelTalkingStop": "call",
    "MusicOnHoldStart": "call", "MusicOnHoldStop": "call", "BridgeCreate": "call",
    "BridgeDestroy": "call",
}
"""Events Shenava does not use; the shipped manager.conf filters them out."""


def _ast_instring(bigstr: str, smallstr: str) -> bool:
    """main/manager.c ast_instring(bigstr, smallstr, ','), byte for byte.

    Every comma-separated token but the last matches when it is a prefix of
    ``smallstr`` (``strncmp`` over the token's length); the last must equal
    it (``strcmp``). Nothing is trimmed and case counts."""
    start = 0
    while True:
        comma = bigstr.find(",", start)
        if comma < 0:
            return bigstr[start:] == smallstr
        if smallstr.startswith(bigstr[start:comma]):
            return True
        start = comma + 1
        if start >= len(bigstr):
            return False


def parse_classes(value: str) -> set[str]:
    """The classes Asterisk grants for ``read =``/``write = value`` (manager.c get_perm()).

    ``"all"`` in the result means every class. Spaces and capitals are not
    forgiven: ``call, agi`` grants ``call`` only (the token is `` agi``)."""
    granted = {label for label in ASTERISK_CLASSES if _ast_instring(value, label)}
    granted.discard("none")
    return granted
