"""WAV validation before decoding: what Vosk is fed must be 16-bit PCM mono.

Asterisk's ``wav`` format is 8 kHz 16-bit mono PCM (``wav16``: 16 kHz). The
chunk walk is done here rather than with :mod:`wave`, so every defect gets an
error that says what is wrong (empty, truncated, not WAV, wrong encoding), and
the decoder reads exactly the ``data`` chunk's bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recordings.errors import EmptyAudioError, TruncatedAudioError, WrongAudioFormatError

__all__ = ["WavInfo", "inspect_wav", "parse_wav", "MIN_RATE", "MAX_RATE"]

MIN_RATE = 8000
MAX_RATE = 48000
PCM = 1
EXTENSIBLE = 0xFFFE
HEADER_BYTES = 12
CHUNK_HEADER_BYTES = 8
UNKNOWN_SIZES = (0, 0xFFFFFFFF)
"""``data`` sizes left by a writer that never finalised the header (streamed or interrupted)."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    data_offset: int
    data_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.channels * self.bits // 8)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def inspect_wav(path: Path) -> WavInfo:
    """Check ``path`` and say where its samples are; raises an ``AudioError`` subclass."""
    with path.open("rb") as f:
        size = path.stat().st_size
        return parse_wav(f, size, str(path))


def parse_wav(f: BinaryIO, size: int, name: str = "<wav>") -> WavInfo:
    if size == 0:
        raise EmptyAudioError(f"{name}: empty file (0 bytes)")
    head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES:
        if b"RIFF".startswith(head[:4]):
            raise TruncatedAudioError(f"{name}: truncated WAV ({size} bytes, not even a RIFF header)")
        raise WrongAudioFormatError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WrongAudioFormatError(f"{name}: not a WAV file (no RIFF/WAVE header, starts {head[:4]!r})")
    fmt: tuple[int, int, int, int] | None = None
    position = HEADER_BYTES
    while True:
        chunk = f.read(CHUNK_HEADER_BYTES)
        if len(chunk) < CHUNK_HEADER_BYTES:
            what = "fmt" if fmt is None else "data"
            raise TruncatedAudioError(f"{name}: truncated WAV (no {what} chunk in {size} bytes)")
        chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        position += CHUNK_HEADER_BYTES
        if chunk_id == b"fmt ":
            fmt = _read_fmt(f, chunk_size, name)
        elif chunk_id == b"data":
            if fmt is None:
                raise WrongAudioFormatError(f"{name}: WAV data chunk before its fmt chunk")
            return _data_info(fmt, position, chunk_size, size, name)
        else:
            f.seek(chunk_size + (chunk_size & 1), 1)
        position += chunk_size + (chunk_size & 1)


def _read_fmt(f: BinaryIO, chunk_size: int, name: str) -> tuple[int, int, int, int]:
    body = f.read(chunk_size + (chunk_size & 1))
    if chunk_size < 16 or len(body) < 16:
        raise TruncatedAudioError(f"{name}: truncated WAV (fmt chunk of {len(body)} bytes)")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the real tag
    if tag != PCM:
        raise WrongAudioFormatError(
            f"{name}: WAV encoding {tag:#06x} is not PCM (record with Asterisk's 'wav' format, not 'WAV'/GSM)"
        )
    if bits != 16:
        raise WrongAudioFormatError(f"{name}: {bits}-bit samples, expected 16-bit PCM")
    if channels != 1:
        raise WrongAudioFormatError(f"{name}: {channels} channels, expected mono")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WrongAudioFormatError(f"{name}: sample rate {rate} Hz, expected {MIN_RATE} to {MAX_RATE} Hz")
    return tag, channels, rate, bits


def _data_info(fmt: tuple[int, int, int, int], offset: int, declared: int, size: int, name: str) -> WavInfo:
    _tag, channels, rate, bits = fmt
    present = size - offset
    if declared in UNKNOWN_SIZES:
        declared = present  # the writer never finalised the header: take what is there
    elif declared > present:
        raise TruncatedAudioError(
            f"{name}: truncated WAV (data chunk declares {declared} bytes, only {present} present)"
        )
    frame_bytes = channels * bits // 8
    usable = declared - declared % frame_bytes
    if usable <= 0:
        raise EmptyAudioError(f"{name}: WAV has no audio (empty data chunk)")
    return WavInfo(sample_rate=rate, channels=channels, bits=bits, data_offset=offset, data_bytes=usable)
