"""The recordings package's errors, one class per domain error, each with a stable ``code``."""

from __future__ import annotations


class RecordingsError(Exception):
    code = "recordings.error"


class AudioError(RecordingsError):
    """A voicemail file cannot be transcribed as it is: retrying will not help."""

    code = "recordings.bad_audio"


class EmptyAudioError(AudioError):
    code = "recordings.empty_audio"


class TruncatedAudioError(AudioError):
    code = "recordings.truncated_audio"


class WrongAudioFormatError(AudioError):
    code = "recordings.wrong_audio_format"


class ModelMissingError(RecordingsError):
    """A configured Vosk model folder does not exist."""

    code = "recordings.model_missing"

    def __init__(self, path: object, lang: str | None = None, detail: str = "") -> None:
        self.path = path
        self.lang = lang
        which = f"Vosk model for {lang!r}" if lang else "Vosk model"
        extra = f": {detail}" if detail else ""
        super().__init__(f"{which} not found at {path}{extra}")


class ModelInvalidError(RecordingsError):
    """A folder is not a usable Vosk model (files missing, or Vosk refused it)."""

    code = "recordings.model_invalid"


class NoModelError(RecordingsError):
    """No model is configured or registered for a voicemail's language."""

    code = "recordings.no_model"


class JobLostError(RecordingsError):
    """Another worker has claimed the job this worker was transcribing."""

    code = "recordings.job_lost"


class UnknownVoicemailError(RecordingsError):
    code = "recordings.unknown_voicemail"
