"""Voicemail: files and metadata, the Redis Streams transcription queue, Vosk workers, triage.

The daemon imports ``recordings.store`` (redis.asyncio, no Vosk); worker
processes import ``recordings.worker`` and ``recordings.vosk_engine``. See
``docs/voicemail.md``.
"""
