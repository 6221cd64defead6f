"""Coverage-guided fuzzing (atheris) of the AMI codec and the AGI result parser.

Not a test and not in CI: a long run on demand, documented in
``docs/benchmarks.md``. atheris is not a project dependency; install it in
your own venv (``.venv/bin/pip install atheris``). Run::

    nice -n 19 .venv/bin/python benchmarks/fuzz/ami_input.py \\
        -max_total_time=600 -rss_limit_mb=1024 /tmp/ami-fuzz-corpus

(``--seed-corpus DIR`` first writes seeds from the captures into ``DIR``.)

The first byte of each input picks the target:

- even: the codec. The rest is split at points taken from its first bytes;
  feeding the pieces must give the same messages (and the same banner) as
  feeding the whole, and reading any message's kind, ``ActionID`` and
  headers must not raise. Only ``MessageTooLargeError`` may leave ``feed``.
- odd: the AGI result parser. The rest, as UTF-8 text, goes through
  ``parse_result`` and ``decode_result`` for each verb; each must return a
  result whose every property reads, or raise ``AGIResultError``.

Any other exception, or a difference, is a crash: libFuzzer writes the input
to ``crash-*`` and stops.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from ami_bridge.agi import KEY_CODE_VERBS, KEYS_READ_VERBS, decode_result, parse_result
    from ami_bridge.codec import AMIDecoder, Message
    from ami_bridge.errors import AGIResultError, MessageTooLargeError

VERBS: list[str | None] = [None, "SET VARIABLE", *sorted(KEY_CODE_VERBS), *sorted(KEYS_READ_VERBS)]
MAX_MESSAGE_BYTES = 4096  # small, so the size limit is reached too


def _decode(data: bytes, cuts: list[int], banner: bool) -> tuple[list[object], str | None, str]:
    decoder = AMIDecoder(expect_banner=banner, max_message_bytes=MAX_MESSAGE_BYTES)
    out: list[object] = []
    start = 0
    try:
        for cut in [*cuts, len(data)]:
            out.extend(_look_at(m) for m in decoder.feed(data[start:cut]))
            start = cut
        out.extend(_look_at(m) for m in decoder.feed(b"\r\n\r\n"))
    except MessageTooLargeError as error:
        out.extend(_look_at(m) for m in error.messages)
        return out, decoder.banner, "too large"
    return out, decoder.banner, ""


def _look_at(message: Message) -> object:
    kind = (message.event, message.response, message.action_id)
    return kind, message.headers, message.get("Channel"), message.as_dict()


def fuzz_codec(data: bytes) -> None:
    if not data:
        return
    banner = bool(data[0] & 1)
    n_cuts = data[0] >> 1 & 7
    body = data[1 + n_cuts :]
    cuts = sorted(b * len(body) // 255 for b in data[1 : 1 + n_cuts])
    whole = _decode(body, [], banner)
    pieces = _decode(body, cuts, banner)
    if pieces[2] or whole[2]:
        # Past the size limit the reads decide where the error comes; the
        # messages before it must still be a prefix of each other.
        shorter, longer = sorted((pieces[0], whole[0]), key=len)
        if longer[: len(shorter)] != shorter:
            raise AssertionError(f"messages differ before the size limit: cuts {cuts}")
        return
    if pieces != whole:
        raise AssertionError(f"cuts {cuts} give other messages than the whole")


def fuzz_agi(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for verb in VERBS:
        for parse in (parse_result, decode_result):
            try:
                result = parse(text, verb=verb)
            except AGIResultError:
                continue
            read = (result.ok, result.hung_up, result.timed_out, result.digits, result.dtmf, result.endpos)
            assert len(read) == 6


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        fuzz_agi(data[1:])
    else:
        fuzz_codec(data[1:])


def seed_corpus(folder: Path) -> None:
    """Seeds: the start of each capture (codec) and the captured AGI results."""
    captures = Path(__file__).resolve().parents[2] / "tests" / "data" / "ami-transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted(captures.glob("*.ami"))):
        (folder / f"codec-{i}").write_bytes(b"\x00\x07" + path.read_bytes()[:3000])
    for i, result in enumerate([
        "200 result=2\n", "200 result=0 (timeout) endpos=54173\n", "200 result=-1 endpos=7360\n",
        "200 result= (timeout)\n", "520-Invalid command syntax.\n Usage: X\n520 End of proper usage.\n",
        "200%20result%3D0%20endpos%3D6920%0A",
    ]):
        (folder / f"agi-{i}").write_bytes(b"\x01" + result.encode())


def main() -> None:
    argv = sys.argv
    if "--seed-corpus" in argv:
        at = argv.index("--seed-corpus")
        seed_corpus(Path(argv[at + 1]))
        argv = argv[:at] + argv[at + 2 :]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
