"""Keeping a waiting caller company under AsyncAGI: music, position, options.

The caller's channel stays in ``AGI(agi:async)`` while they wait, so the
daemon can interrupt the music at any moment: an AMI ``Bridge`` pulls the
channel out of the running ``EXEC MusicOnHold`` (transcript 40), after which
that command never reports back. Every ``announce_every_s`` the music stops
for the caller's position ("shenava/hold-position", then their place read
digit by digit, both in one ``EXEC Playback``) and their options
("shenava/hold-options", a ``GET DATA``): 1 keeps their place and books a
callback instead of waiting, 2 leaves a voicemail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from ami_bridge.agi import AGIResult, quote_argument
from ami_bridge.errors import AMIError, ChannelGoneError, ConnectionLostError
from ami_bridge.protocol import agi_verb

log = Logger()

AGIExecutor = Callable[[str, str], Deferred[AGIResult]]
"""``(channel, command) -> Deferred[AGIResult]``: ``AMIConnection.agi``."""

CALLBACK_KEY = "1"
VOICEMAIL_KEY = "2"
HOLD_OPTIONS_TIMEOUT_S = 3.0
MAX_FAILED_IN_A_ROW = 5
"""Commands that fail one after another before the hold gives up on its
sounds (the caller keeps their place in line and is still routed; only the
music and announcements stop). A bound, so a link that fails every command at
once cannot spin the loop."""
SOUND_FOLDER = "shenava"


@dataclass(frozen=True, slots=True)
class HoldConfig:
    music_class: str = "default"
    announce_every_s: float = 45.0
    offer_options: bool = True
    announce_position: bool = True
    sound_folder: str = SOUND_FOLDER


def position_files(sound_folder: str, position: int) -> str:
    """"Your position is" and the position's digits as one ``Playback`` list:
    ``shenava/hold-position&digits/1&digits/2``.

    What the caller hears is what ``STREAM FILE shenava/hold-position ""`` then
    ``SAY DIGITS 12 ""`` played: ``SAY DIGITS`` streams ``digits/<n>`` in the
    channel's language one after another (main/say.c), and ``Playback`` plays
    the files of its ``&`` list in the channel's language in turn (as the
    reference read after a complaint already does, ``CallFlow._tell_reference``).
    Neither could be interrupted by a key (no
    escape digits; ``Playback`` takes none): the options that follow
    (``GET DATA hold-options``) are where a key counts, so they stay a command
    of their own. One AGI round trip instead of two per announcement."""
    return "&".join([f"{sound_folder}/hold-position", *(f"digits/{d}" for d in str(position))])


class HoldLoop:
    """Plays hold music and announcements to one caller until stopped."""

    def __init__(
        self,
        agi: AGIExecutor,
        channel: str,
        language: str,
        config: HoldConfig,
        position: Callable[[], int | None],
        on_choice: Callable[[str], object],
        *,
        set_language: bool = True,
    ) -> None:
        self._agi = agi
        self._channel = channel
        self._language = language
        self._config = config
        self._position = position
        self._on_choice = on_choice
        self._set_language = set_language  # False: the channel has the caller's language already
        self._stopped = False
        self._failed_in_a_row = 0
        self.done: Deferred[None] | None = None

    def start(self) -> Deferred[None]:
        self.done = ensureDeferred(self._run())
        return self.done

    def stop(self) -> None:
        """No more commands from now on (a running one ends with the bridge or hang-up)."""
        self._stopped = True

    async def _command(self, command: str) -> AGIResult | None:
        if self._stopped:
            return None
        try:
            result = await self._agi(self._channel, command)
        except (ChannelGoneError, ConnectionLostError):
            # The caller hung up, was bridged to an agent, or the link to
            # Asterisk dropped: the hold is over either way.
            self._stopped = True
            return None
        except AMIError as exc:
            # No answer in time (an overloaded Asterisk or daemon), an
            # unreadable result, or a refusal that does not say the channel is
            # gone: the caller is still waiting, so the hold goes on with its
            # next sound rather than leaving them in silence.
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                log.error(
                    "hold sounds stopped on {channel} after {count} failed commands in a row: {error}",
                    channel=self._channel, count=self._failed_in_a_row, error=exc,
                )
                self._stopped = True
            else:
                log.warn("hold command {verb} failed on {channel}: {code}",
                         verb=agi_verb(command), channel=self._channel,
                         code=getattr(exc, "code", type(exc).__name__))
            return None
        self._failed_in_a_row = 0
        if result.hung_up:
            self._stopped = True
            return None
        return result

    async def _run(self) -> None:
        config = self._config
        if self._set_language:
            await self._command(f"SET VARIABLE CHANNEL(language) {quote_argument(self._language)}")
        first = True
        while not self._stopped:
            if not first and config.announce_position:
                position = self._position()
                if position is not None:
                    await self._command(f"EXEC Playback {position_files(config.sound_folder, position)}")
            if not first and config.offer_options:
                timeout_ms = int(HOLD_OPTIONS_TIMEOUT_S * 1000)
                result = await self._command(
                    f"GET DATA {self._config.sound_folder}/hold-options {timeout_ms} 1"
                )
                if result is not None and result.digits in (CALLBACK_KEY, VOICEMAIL_KEY):
                    self._stopped = True
                    self._on_choice(result.digits)
                    return
            first = False
            seconds = max(1, int(config.announce_every_s))
            await self._command(f"EXEC MusicOnHold {config.music_class},{seconds}")
