"""Settings of one test PBX world: who may log in, where recordings go, timings."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

AUTH_FAIL_DELAY_S = 1.0  # the capture shows the error ~1 s after a bad Login
AGI_PICKUP_S = 0.02  # AsyncAGI polls its command queue; 17-100 ms in the captures
BUSY_RESPONSE = "response"  # OriginateResponse Failure, Reason 5
BUSY_LEG = "leg"  # Hangup of the ;1 half (the ChannelId), Cause 0
BUSY_FAR = "far"  # SoftHangupRequest and Hangup of the ;2 half, Cause 17
BusyOrder = tuple[str, str, str]
# How often each order came over 18 busy originates behind a Local channel on a
# real Asterisk (transcript 46's README): the test PBX draws from these.
CAPTURED_BUSY_ORDERS: tuple[tuple[BusyOrder, int], ...] = (
    ((BUSY_RESPONSE, BUSY_LEG, BUSY_FAR), 11),
    ((BUSY_LEG, BUSY_RESPONSE, BUSY_FAR), 4),
    ((BUSY_RESPONSE, BUSY_FAR, BUSY_LEG), 1),
    ((BUSY_FAR, BUSY_LEG, BUSY_RESPONSE), 1),
    ((BUSY_LEG, BUSY_FAR, BUSY_RESPONSE), 1),
)
LOCAL_PROPAGATION_S = 0.001  # a Local half learns of its partner's hang-up a tick later
DTMF_DURATION_S = 0.1  # DTMFBegin to DTMFEnd, as captured (DurationMs: 100)
DEFAULT_PROMPT_S = 1.0  # length of a sound file the PBX knows nothing about

# Lengths of the Asterisk core sounds used in the captures (samples / 8000).
KNOWN_PROMPTS_S: dict[str, float] = {
    "beep": 0.25,
    "vm-goodbye": 6920 / 8000,
    "vm-intro": 5.0,
}


@dataclass(frozen=True, slots=True)
class AmiRights:
    """What one ``manager.conf`` user may see and do, applied as main/manager.c does.

    ``read``/``write``: the classes granted (None: every class, ``all``).
    An event is sent only if ``read`` holds every class of its ``Privilege``
    (process_events: ``(readperm & category) == category``) and the user's
    ``eventfilter`` lines let it through (should_send_event: with include
    patterns only what one matches, then any matching exclude pattern drops
    it; each a regular expression searched in the event's whole text). An
    action runs if ``write`` shares one class with the action's
    (process_message: ``writeperm & authority``), else ``Permission denied``.
    Answers to an action (list events included) are never filtered.
    """

    read: frozenset[str] | None = None
    write: frozenset[str] | None = None
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(
        cls,
        read: Iterable[str] | None = None,
        write: Iterable[str] | None = None,
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> AmiRights:
        return cls(
            read=None if read is None or "all" in read else frozenset(read),
            write=None if write is None or "all" in write else frozenset(write),
            include=tuple(re.compile(p) for p in include),
            exclude=tuple(re.compile(p) for p in exclude),
        )

    def may_read(self, classes: frozenset[str]) -> bool:
        return self.read is None or classes <= self.read

    def passes_filters(self, text: str) -> bool:
        if self.include and not any(p.search(text) for p in self.include):
            return False
        return not any(p.search(text) for p in self.exclude)

    def may_run(self, authority: frozenset[str]) -> bool:
        return not authority or self.write is None or bool(authority & self.write)


@dataclass(frozen=True, slots=True)
class PbxOptions:
    """How a :class:`~testpbx.world.PbxWorld` behaves.

    ``users`` maps AMI user names to secrets, ``rights`` them to what
    ``manager.conf`` lets them see and do. ``recordings_root`` plays the
    role of Asterisk's sounds directory for ``RECORD FILE``: relative paths are
    written under it and absolute paths must stay inside it. ``sounds`` maps a
    sound name (``vm-intro``) to a WAV file: its length is the prompt's length
    and, when a Local channel plays it, the audio its partner hears.
    """

    users: dict[str, str] = field(default_factory=lambda: {"shenava": "s3cret"})
    rights: dict[str, AmiRights] = field(default_factory=dict)
    """Per user; a user not named here may read and write everything."""
    recordings_root: Path = Path("recordings")
    support_context: str = "complaints-ivr"
    auth_fail_delay_s: float = AUTH_FAIL_DELAY_S
    agi_pickup_s: float = AGI_PICKUP_S
    prompt_lengths_s: dict[str, float] = field(default_factory=lambda: dict(KNOWN_PROMPTS_S))
    sounds: dict[str, Path] = field(default_factory=dict)
    asterisk_version: str = "22.10.1"
    seed: int = 0
    fixed_challenge: str | None = None  # replay tests reuse a captured MD5 challenge
    busy_orders: tuple[BusyOrder, ...] = ()
    """The order of the three last events of an originated leg that is busy
    behind a Local channel (transcript 46), one per such originate, in turn
    (the last repeats); empty: drawn with the world's seeded random generator
    at the frequencies a real Asterisk showed (``CAPTURED_BUSY_ORDERS``)."""
    sound_languages: tuple[str, ...] = ("fa", "en")
    """The language folders of the sounds directory (``<lang>/shenava/...``,
    ``<lang>/digits/...``): what :func:`testpbx.agi_commands.heard_as` takes
    to exist when it finds the file a sound name plays."""
    channelvars: tuple[str, ...] = ()
    """manager.conf's ``[general] channelvars``: every channel event (and the
    channel part of a list answer) carries ``ChanVariable: NAME=value`` for
    each, an empty value when the channel has none, as Asterisk's
    ``ast_manager_build_channel_state_string`` does. For every AMI session:
    the setting is global in Asterisk too."""
