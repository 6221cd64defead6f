"""Settings of one test PBX world: who may log in, where recordings go, timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

AUTH_FAIL_DELAY_S = 1.0  # the capture shows the error ~1 s after a bad Login
AGI_PICKUP_S = 0.02  # AsyncAGI polls its command queue; 17-100 ms in the captures
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
class PbxOptions:
    """How a :class:`~ami_bridge.testpbx.world.PbxWorld` behaves.

    ``users`` maps AMI user names to secrets. ``recordings_root`` plays the
    role of Asterisk's sounds directory for ``RECORD FILE``: relative paths are
    written under it and absolute paths must stay inside it. ``sounds`` maps a
    sound name (``vm-intro``) to a WAV file: its length is the prompt's length
    and, when a Local channel plays it, the audio its partner hears.
    """

    users: dict[str, str] = field(default_factory=lambda: {"shenava": "s3cret"})
    recordings_root: Path = Path("recordings")
    support_context: str = "complaints-ivr"
    auth_fail_delay_s: float = AUTH_FAIL_DELAY_S
    agi_pickup_s: float = AGI_PICKUP_S
    prompt_lengths_s: dict[str, float] = field(default_factory=lambda: dict(KNOWN_PROMPTS_S))
    sounds: dict[str, Path] = field(default_factory=dict)
    asterisk_version: str = "22.10.1"
    seed: int = 0
    fixed_challenge: str | None = None  # replay tests reuse a captured MD5 challenge
