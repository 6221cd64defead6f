"""The AGI commands the test PBX runs, with Asterisk 22's result lines."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from testpbx import agi_engine, audio, moh, teardown
from testpbx.channel import STATE_UP, Channel

if TYPE_CHECKING:
    from testpbx.agi_engine import AgiSession

SOFT_HANGUP_EXPLICIT = 32  # the Cause of the SoftHangupRequest an AGI HANGUP sends
SAY_DIGIT_S = 0.6
BEEP_S = 0.25
DEFAULT_GET_DATA_TIMEOUT_MS = 6000
INVALID = "510 Invalid or unknown command"
USAGE = "520 Invalid command syntax.  Proper usage not available."


def split_args(line: str) -> list[str]:
    """Split like res_agi: whitespace separates, double quotes group, backslash escapes."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = escaped = have = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
            have = True
        elif char.isspace() and not in_quotes:
            if current or have:
                args.append("".join(current))
            current, have = [], False
        else:
            current.append(char)
    if current or have:
        args.append("".join(current))
    return args


DEFAULT_LANGUAGE = "en"  # Asterisk's DEFAULT_LANGUAGE, its last resort for a sound


def channel_language(ch: Channel) -> str:
    """``CHANNEL(language)`` as last set on the channel (its own language before)."""
    return ch.variables.get("CHANNEL(language)") or ch.language


def heard_as(name: str, language: str, languages: Collection[str]) -> str:
    """The file Asterisk plays for the sound ``name`` on a channel in
    ``language`` ("" when none is found), as main/file.c's
    ``fileexists_core`` looks (``languageprefix = yes``, the default): the
    channel's language folder (``fa_IR``, then ``fa``), then the name as it
    is, then the default language's folder. Here a file exists when its path
    starts with one language folder of ``languages`` and not two
    (``en/fa/shenava/welcome`` does not, ``fa/shenava/welcome`` does). So
    ``shenava/welcome`` on a Persian channel and ``fa/shenava/welcome`` on an
    English one are the same file."""

    def exists(path: str) -> bool:
        parts = path.split("/")
        return len(parts) > 1 and parts[0] in languages and parts[1] not in languages

    tried: list[str] = []
    lang = language
    while lang:
        tried.append(f"{lang}/{name}")
        if "_" not in lang:
            break
        lang = lang.rsplit("_", 1)[0]
    tried.append(name)
    if language != DEFAULT_LANGUAGE:
        tried.append(f"{DEFAULT_LANGUAGE}/{name}")
    return next((path for path in tried if exists(path)), "")


def play_sounds(command: AgiCommand, names: list[str]) -> None:
    """Note what the caller hears of ``names`` played in the channel's language."""
    ch = command.channel
    language = channel_language(ch)
    languages = command.world.options.sound_languages
    ch.heard.extend(heard_as(name, language, languages) for name in names)


class AgiCommand:
    """One command. ``start`` runs it; it ends by calling ``finish``."""

    def __init__(self, session: AgiSession, line: str, command_id: str | None, args: list[str]) -> None:
        self.session = session
        self.world = session.world
        self.channel = session.channel
        self.line = line
        self.command_id = command_id
        self.args = args
        self.internal_id = ""
        self.timers: list[IDelayedCall] = []
        self.started_at = self.world.now()

    def arg(self, index: int, default: str = "") -> str:
        return self.args[index] if index < len(self.args) else default

    def after(self, delay: float, fn: object, *args: object) -> None:
        self.timers.append(self.world.later(None, delay, fn, *args))  # type: ignore[arg-type]

    def start(self) -> None:
        self.finish(INVALID)

    def digit(self, digit: str) -> None:
        """A key ended (DTMFEnd) while this command ran."""

    def interrupted(self, hung_up: bool) -> str:
        return "200 result=-1"

    def finish(self, result: str) -> None:
        self.session.finish(self, result)

    def cancel(self) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers.clear()

    def elapsed_samples(self) -> int:
        return int((self.world.now() - self.started_at) * audio.RATE)


class Immediate(AgiCommand):
    def __init__(self, session: AgiSession, line: str, command_id: str | None,
                 args: list[str], result: str) -> None:
        super().__init__(session, line, command_id, args)
        self.result = result

    def start(self) -> None:
        self.finish(self.result)


class Answer(AgiCommand):
    def start(self) -> None:
        from testpbx import originate

        if self.channel.state != STATE_UP:
            originate.answer(self.world, self.channel)
        self.finish("200 result=0")


class StreamFile(AgiCommand):
    """``STREAM FILE name escape`` (also ``SAY DIGITS``: spoken digit by digit)."""

    def start(self) -> None:
        self.escape = self.arg(1)
        self.length_s = self.prompt_length()
        self.after(self.length_s, self._done)
        play_sounds(self, self.sounds())

    def sounds(self) -> list[str]:
        return [self.arg(0)]

    def prompt_length(self) -> float:
        return audio.prompt_seconds(self.world.options, self.arg(0))

    def _done(self) -> None:
        self.finish(f"200 result=0 endpos={int(self.length_s * audio.RATE)}")

    def digit(self, digit: str) -> None:
        if digit in self.escape:
            self.finish(f"200 result={ord(digit)} endpos={self.elapsed_samples()}")

    def interrupted(self, hung_up: bool) -> str:
        return f"200 result=-1 endpos={self.elapsed_samples()}"


def file_seconds(command: AgiCommand, name: str) -> float:
    """How long one sound file plays: a digit (``digits/7``, what SAY DIGITS
    plays) as long as SAY DIGITS gives it, unless its length is configured."""
    options = command.world.options
    if name.startswith("digits/") and name not in options.prompt_lengths_s and name not in options.sounds:
        return SAY_DIGIT_S
    return audio.prompt_seconds(options, name)


class SayDigits(StreamFile):
    def prompt_length(self) -> float:
        return SAY_DIGIT_S * max(1, len(self.arg(0)))

    def sounds(self) -> list[str]:
        return [f"digits/{d}" for d in self.arg(0) if d.isdigit()]

    def _done(self) -> None:
        self.finish("200 result=0")

    def interrupted(self, hung_up: bool) -> str:
        return "200 result=-1"

    def digit(self, digit: str) -> None:
        if digit in self.escape:
            self.finish(f"200 result={ord(digit)}")


class GetData(AgiCommand):
    """``GET DATA prompt [timeout ms] [max digits]``; ``#`` ends the input."""

    def start(self) -> None:
        if not self.args:
            self.finish(USAGE)
            return
        timeout_ms = int(self.arg(1, "0") or 0) or DEFAULT_GET_DATA_TIMEOUT_MS
        self.timeout_s = timeout_ms / 1000
        self.max_digits = int(self.arg(2, "1024") or 1024)
        self.digits = ""
        self.prompt_s = audio.prompt_seconds(self.world.options, self.arg(0))
        self.after(self.prompt_s + self.timeout_s, self._timeout)
        if self.arg(0):
            play_sounds(self, [self.arg(0)])
        if self.channel.caller is not None:
            self.channel.caller.prompt_started(self.arg(0))

    def _timeout(self) -> None:
        self.finish(f"200 result={self.digits} (timeout)")

    def digit(self, digit: str) -> None:
        if digit == "#":
            self.finish(f"200 result={self.digits}")
            return
        self.digits += digit
        if len(self.digits) >= self.max_digits:
            self.finish(f"200 result={self.digits}")
            return
        self.cancel()
        self.after(self.timeout_s, self._timeout)


class WaitForDigit(AgiCommand):
    def start(self) -> None:
        timeout_ms = int(self.arg(0, "-1") or -1)
        if timeout_ms >= 0:
            self.after(timeout_ms / 1000, self.finish, "200 result=0")
        if self.channel.caller is not None:
            self.channel.caller.prompt_started()

    def digit(self, digit: str) -> None:
        self.finish(f"200 result={ord(digit)}")


class RecordFile(AgiCommand):
    """``RECORD FILE name format escape timeout [offset] [BEEP] [s=silence]``.

    Writes what the caller says (its Local partner's audio) as a WAV file
    under the recordings root; ``endpos`` is the number of samples written."""

    def start(self) -> None:
        if len(self.args) < 4:
            self.finish(USAGE)
            return
        self.path = self._path()
        if self.path is None:
            self.finish("200 result=-1 (writefile)")
            return
        self.escape = self.arg(2)
        beep = any(a.upper() == "BEEP" for a in self.args[4:])
        if beep:
            play_sounds(self, ["beep"])
        self.after(BEEP_S if beep else 0.0, self._begin, int(self.arg(3, "-1") or -1))

    def _path(self) -> Path | None:
        fmt = self.arg(1).lower()
        if fmt not in ("wav", "sln"):
            return None
        root = self.world.options.recordings_root.resolve()
        target = Path(self.arg(0))
        if not target.is_absolute():
            target = root / target
        target = Path(f"{target}.{fmt}").resolve()
        return target if target.is_relative_to(root) else None

    def _begin(self, timeout_ms: int) -> None:
        self.record_from = self.world.now()
        if timeout_ms > 0:
            self.after(timeout_ms / 1000, self._stop, "200 result=0 (timeout)")
        if self.channel.caller is not None:
            self.channel.caller.record_started()

    def _write(self) -> int:
        ch = self.channel
        source = ch.partner if ch.partner is not None else ch
        start = getattr(self, "record_from", self.world.now())
        pcm = audio.cut(source.speech, start, self.world.now())
        assert self.path is not None
        if self.path.suffix == ".wav":
            audio.write_wav(self.path, pcm)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(pcm)
        return len(pcm) // audio.SAMPLE_BYTES

    def _stop(self, result: str) -> None:
        self.finish(f"{result} endpos={self._write()}")

    def digit(self, digit: str) -> None:
        if digit in self.escape:
            self._stop(f"200 result={ord(digit)} (dtmf)")

    def interrupted(self, hung_up: bool) -> str:
        endpos = self._write() if getattr(self, "path", None) is not None else 0
        return f"200 result=-1 (hangup) endpos={endpos}"


_EXEC_APPS = {
    name.lower(): name
    for name in ("MusicOnHold", "Playback", "Wait", "Answer", "NoOp", "Verbose", "Set", "MSet")
}


def separate_args(data: str, delim: str = ",", limit: int = 0) -> list[str]:
    """Split an application's argument like Asterisk's ``ast_app_separate_args``
    (``main/app.c``): ``delim`` outside brackets and double quotes separates
    (brackets count inside quotes too); quotes and backslashes are removed (a
    backslash keeps the next character); with ``limit`` the last part keeps
    the rest as it is."""
    parts: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quoted = escaped = False
    for index, char in enumerate(data):
        if limit and len(parts) == limit - 1:
            current.append(data[index:])
            break
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == delim and not (paren or bracket or quoted):
            parts.append("".join(current))
            current = []
        else:
            if char == "(":
                paren += 1
            elif char == ")" and paren:
                paren -= 1
            elif char == "[":
                bracket += 1
            elif char == "]" and bracket:
                bracket -= 1
            current.append(char)
    parts.append("".join(current))
    return parts


class Exec(AgiCommand):
    """``EXEC app args``: MusicOnHold, Playback, Wait, Answer; others return -2."""

    def start(self) -> None:
        app = self.arg(0).lower()
        data = " ".join(self.args[1:]).replace("|", ",")
        params = data.split(",")
        if app in _EXEC_APPS:
            # CoreShowChannels/Status show the last EXECed application from
            # now on, not AGI, even after it ended (transcript 45).
            self.channel.application, self.channel.appdata = _EXEC_APPS[app], data
        if app == "musiconhold":
            moh.start_moh(self.world, self.channel, params[0] or "default")
            seconds = float(params[1]) if len(params) > 1 and params[1].strip() else 0.0
            if seconds > 0:
                self.after(seconds, self._moh_over)
        elif app == "playback":
            files = [f for f in params[0].split("&") if f]
            total = sum(file_seconds(self, f) for f in files)
            play_sounds(self, files)
            self.after(total, self.finish, "200 result=0")
        elif app == "wait":
            self.after(float(params[0] or 0), self.finish, "200 result=0")
        elif app == "answer":
            from testpbx import originate

            if self.channel.state != STATE_UP:
                originate.answer(self.world, self.channel)
            self.finish("200 result=0")
        elif app in ("noop", "verbose", "set"):
            if app == "set":
                name, _, value = data.partition("=")
                self.channel.variables[name.strip()] = value
            self.finish("200 result=0")
        elif app == "mset":
            # pbx_builtin_setvar_multiple: pairs split at ",", each at its
            # first "="; an entry with no "=" is ignored (a warning); 0 always.
            for pair in separate_args(data) if data else []:
                parts = separate_args(pair, "=", 2)
                if len(parts) == 2:
                    self.channel.variables[parts[0]] = parts[1]
            self.finish("200 result=0")
        else:
            self.finish("200 result=-2")

    def _moh_over(self) -> None:
        moh.stop_moh(self.world, self.channel)
        self.finish("200 result=0")


class Hangup(AgiCommand):
    def start(self) -> None:
        world, ch = self.world, self.channel
        other_name = self.arg(0)
        if other_name and other_name != ch.name:
            other = world.find(other_name)
            if other is None:
                self.finish("200 result=-1")
                return
            teardown.request_hangup(world, other)
            self.finish("200 result=1")
            return
        teardown.soft_hangup(world, ch, SOFT_HANGUP_EXPLICIT)
        self.finish("200 result=1")
        # The AGI application returns, the dialplan sees the hang-up.
        agi_engine.end_session(world, ch)
        teardown.soft_hangup(world, ch)
        teardown.end(world, ch)


class AsyncAgiBreak(AgiCommand):
    def start(self) -> None:
        from testpbx import dialplan

        self.finish("200 result=0")
        agi_engine.end_session(self.world, self.channel)
        dialplan.resume_next(self.world, self.channel)


class Variable(AgiCommand):
    def start(self) -> None:
        ch = self.channel
        words = [a.upper() for a in self.args[:1]]
        if self.line.upper().startswith("SET VARIABLE"):
            if len(self.args) < 2:
                self.finish(USAGE)
                return
            ch.variables[self.args[0]] = self.args[1]
            self.finish("200 result=1")
            return
        del words
        value = lookup_variable(self, self.arg(0))
        self.finish("200 result=0" if value is None else f"200 result=1 ({value})")


def lookup_variable(command: AgiCommand, name: str) -> str | None:
    ch = command.channel
    special = {
        "CALLERID(num)": ch.caller_num,
        "CALLERID(name)": ch.caller_name,
        "CHANNEL": ch.name,
        "UNIQUEID": ch.uniqueid,
        "CONTEXT": ch.context,
        "EXTEN": ch.exten,
    }
    if name in ch.variables:
        return ch.variables[name]
    if name in special:
        return special[name]
    return command.world.global_vars.get(name)


class Moh(AgiCommand):
    def start(self) -> None:
        if self.arg(0).lower() == "on":
            moh.start_moh(self.world, self.channel, self.arg(1) or "default")
        else:
            moh.stop_moh(self.world, self.channel)
        self.finish("200 result=0")


_COMMANDS: dict[tuple[str, ...], type[AgiCommand]] = {
    ("ANSWER",): Answer,
    ("STREAM", "FILE"): StreamFile,
    ("SAY", "DIGITS"): SayDigits,
    ("SAY", "NUMBER"): SayDigits,
    ("SAY", "ALPHA"): SayDigits,
    ("GET", "DATA"): GetData,
    ("WAIT", "FOR", "DIGIT"): WaitForDigit,
    ("RECORD", "FILE"): RecordFile,
    ("EXEC",): Exec,
    ("HANGUP",): Hangup,
    ("ASYNCAGI", "BREAK"): AsyncAgiBreak,
    ("SET", "VARIABLE"): Variable,
    ("GET", "VARIABLE"): Variable,
    ("SET", "MUSIC"): Moh,
}
_IMMEDIATE: dict[tuple[str, ...], str] = {
    ("NOOP",): "200 result=0",
    ("VERBOSE",): "200 result=1",
}


def make_command(session: AgiSession, line: str, command_id: str | None) -> AgiCommand:
    words = split_args(line)
    upper = tuple(w.upper() for w in words)
    for size in (3, 2, 1):
        key = upper[:size]
        if key in _COMMANDS:
            return _COMMANDS[key](session, line, command_id, words[size:])
        if key in _IMMEDIATE:
            return Immediate(session, line, command_id, words[size:], _IMMEDIATE[key])
        if key == ("CHANNEL", "STATUS"):
            state = str(session.channel.state)
            return Immediate(session, line, command_id, words[size:], f"200 result={state}")
    return Immediate(session, line, command_id, words, INVALID)
