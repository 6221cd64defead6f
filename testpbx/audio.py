"""Audio as Asterisk records it: 8 kHz, 16-bit, mono, signed linear."""

from __future__ import annotations

import array
import sys
import wave
from pathlib import Path

from testpbx.options import DEFAULT_PROMPT_S, PbxOptions

RATE = 8000
SAMPLE_BYTES = 2


def seconds_to_bytes(seconds: float) -> int:
    return int(round(seconds * RATE)) * SAMPLE_BYTES


def read_pcm(path: Path) -> bytes:
    """A WAV file as 8 kHz mono 16-bit samples (first channel, nearest-sample resampling)."""
    with wave.open(str(path), "rb") as wav:
        width = wav.getsampwidth()
        channels = wav.getnchannels()
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width != SAMPLE_BYTES:
        raise ValueError(f"{path}: only 16-bit WAV files are supported, not {width * 8}-bit")
    samples = array.array("h")
    samples.frombytes(raw)
    if sys.byteorder == "big":
        samples.byteswap()
    if channels > 1:
        samples = samples[::channels]
    if rate != RATE:
        count = int(len(samples) * RATE / rate)
        samples = array.array("h", (samples[int(i * rate / RATE)] for i in range(count)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def write_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(RATE)
        wav.writeframes(pcm)


def _unpinned(options: PbxOptions, name: str) -> str:
    """``fa/shenava/welcome`` -> ``shenava/welcome``: a sound named with its
    language folder is the same file (and length) as by the channel's language."""
    folder, _, rest = name.partition("/")
    if folder in options.sound_languages and "/" in rest:
        return rest
    return name


def prompt_seconds(options: PbxOptions, name: str) -> float:
    name = name if name in options.sounds or name in options.prompt_lengths_s else _unpinned(options, name)
    sound = options.sounds.get(name)
    if sound is not None:
        with wave.open(str(sound), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    return options.prompt_lengths_s.get(name, DEFAULT_PROMPT_S)


def prompt_audio(options: PbxOptions, name: str) -> bytes:
    """What a Local partner hears when ``name`` is played (silence if unknown)."""
    name = name if name in options.sounds else _unpinned(options, name)
    sound = options.sounds.get(name)
    if sound is not None:
        return read_pcm(sound)
    return bytes(seconds_to_bytes(prompt_seconds(options, name)))


def cut(speech: list[tuple[float, bytes]], start: float, stop: float) -> bytes:
    """The audio of ``speech`` spans heard between ``start`` and ``stop``."""
    out = bytearray()
    for begin, pcm in speech:
        end = begin + len(pcm) / SAMPLE_BYTES / RATE
        lo, hi = max(begin, start), min(end, stop)
        if hi <= lo:
            continue
        a = seconds_to_bytes(lo - begin)
        b = seconds_to_bytes(hi - begin)
        out += pcm[a:b]
    return bytes(out)


SAMPLE_RECORDING = Path(__file__).resolve().with_name("audio") / "asterisk-recorded-vm-intro-twice.wav"
"""What a real Asterisk's ``RECORD FILE`` wrote (8 kHz mono, 6.8 s): the prompt
``vm-intro`` spoken twice. Shipped with the test PBX so the demo's callers and
the tests have real audio to speak into a recording."""
