"""WAV validation: every defect gets its own clear error; good Asterisk audio passes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recordings.audio import inspect_wav, parse_wav
from recordings.errors import (
    AudioError,
    EmptyAudioError,
    TruncatedAudioError,
    WrongAudioFormatError,
)
from tests.paths import SAMPLE_RECORDING

SAMPLE = SAMPLE_RECORDING


def wav_bytes(
    samples: bytes = b"\x00\x01" * 800, *, rate: int = 8000, channels: int = 1, bits: int = 16,
    tag: int = 1, data_size: int | None = None, extra_chunk: bytes = b"",
) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    size = len(samples) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunk
    body += b"data" + struct.pack("<I", size) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def parse(data: bytes) -> object:
    return parse_wav(io.BytesIO(data), len(data), "f.wav")


def test_the_real_asterisk_recording_is_8khz_mono_16_bit() -> None:
    info = inspect_wav(SAMPLE)
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    assert info.duration_s == pytest.approx(6.77, abs=0.01)


def test_chunks_before_data_are_skipped() -> None:
    data = wav_bytes(extra_chunk=b"LIST" + struct.pack("<I", 5) + b"abcde\x00")
    info = parse_wav(io.BytesIO(data), len(data))
    assert info.data_bytes == 1600 and data[info.data_offset : info.data_offset + 2] == b"\x00\x01"


def test_a_header_never_finalised_takes_the_bytes_present() -> None:
    data = wav_bytes(data_size=0)
    assert parse_wav(io.BytesIO(data), len(data)).data_bytes == 1600


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", EmptyAudioError, "empty file"),
        (b"RIFF\x10\x00", TruncatedAudioError, "truncated"),
        (wav_bytes()[:30], TruncatedAudioError, "truncated"),
        (wav_bytes()[:-100], TruncatedAudioError, "declares 1600 bytes, only 1500"),
        (wav_bytes(b""), EmptyAudioError, "no audio"),
        (b"ID3\x03" + b"\x00" * 100, WrongAudioFormatError, "not a WAV file"),
        (wav_bytes(tag=0x31), WrongAudioFormatError, "is not PCM"),
        (wav_bytes(bits=8, samples=b"\x80" * 100), WrongAudioFormatError, "8-bit"),
        (wav_bytes(channels=2), WrongAudioFormatError, "2 channels"),
        (wav_bytes(rate=4000), WrongAudioFormatError, "4000 Hz"),
    ],
    ids=["empty", "riff-only", "no-data-chunk", "truncated-data", "no-samples", "mp3", "gsm", "8-bit", "stereo", "rate"],
)
def test_bad_files_get_a_clear_error(data: bytes, error: type[AudioError], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        parse(data)
    assert "f.wav" in str(caught.value)


def test_truncated_real_recording(tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(SAMPLE.read_bytes()[:5000])
    with pytest.raises(TruncatedAudioError, match="cut.wav"):
        inspect_wav(cut)


@given(st.integers(min_value=0, max_value=2000))
def test_any_prefix_of_a_wav_parses_or_raises_an_audio_error(cut: int) -> None:
    data = wav_bytes()[:cut]
    try:
        parse(data)
    except AudioError:
        pass


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_audio_errors(data: bytes) -> None:
    try:
        parse(b"RIFF" + data)
    except AudioError:
        pass
