"""Where the tests' data lives: inside the repository, never beside it.

``tests/data/ami-transcripts`` is a byte-for-byte copy of the real Asterisk
captures (see its README); the recorded sample ships with the test PBX.
"""

from __future__ import annotations

from pathlib import Path

from testpbx.audio import SAMPLE_RECORDING

TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "ami-transcripts"
ASTERISK_CONF = TRANSCRIPTS / "asterisk-conf"

__all__ = ["ASTERISK_CONF", "SAMPLE_RECORDING", "TRANSCRIPTS"]
