"""How fast Shenava's AMI codec parses a real stream, against the alternatives.

    .venv/bin/python benchmarks/ami_codec.py [--messages 50000] [--repeat 5]
        [--read-bytes 1024,4096,65536]

In memory, no socket: a stream of ``--messages`` real captured messages (see
``_common``) is cut into reads of each ``--read-bytes`` size (``message``: one
message per read, as Asterisk, which sets ``TCP_NODELAY``, delivers events that
are not back to back; a busy socket delivers up to 64 KiB), and each contender
parses the same reads in the same process, rounds interleaved; the best round
of each counts. Figures, in the order they are reported:

1. **Like for like** (every message split into all its headers, as the other
   libraries do): ``shenava_full_parse`` (``AMIDecoder.feed``, then every
   message's ``headers``) against ``asterisk_ami`` (asterisk-ami 0.1.7's
   ``AMIClient._next_pack`` over a stand-in socket handing out the same reads,
   then ``Response.read``/``Event.read`` per pack, as ``fire_recv_pack`` does,
   no listeners) and ``panoramisk`` (panoramisk 1.4's
   ``AMIProtocol.data_received``: its split on blank lines and
   ``Message.from_line``, UTF-8 as its ``Manager`` sets it).
2. **The daemon's path**: ``shenava_daemon_path`` is what the daemon does per
   message, ``AMIProtocol.dataReceived`` (framing, dispatch by kind, responses
   matched by ActionID) with every event handed to a ``CallTracker`` (which
   splits the headers it reads), against the same two libraries, which do
   less (they parse, nothing dispatches or tracks).
3. **Lazy framing** (``shenava``): framing, one decode per read, each message's
   kind and a response's ActionID, event headers NOT split. This is not a
   parse of every header and not comparable with the libraries above; it is
   the part of the daemon's path that comes before dispatch.
4. ``split_floor``: framing plus one UTF-8 decode per read and ``str.split``
   into message texts (``_common.SplitFloor``): the bound no reader can beat.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    DEFAULT_MESSAGES,
    DEFAULT_REPEAT,
    IN_MEMORY,
    best_of,
    build_stream,
    cut,
    parse_shenava_daemon,
    ratio,
    stream_mix,
)

READ_SIZES = ("message", "1024", "4096", "65536")
ORDER = ("shenava_full_parse", "shenava_daemon_path", "asterisk_ami", "panoramisk", "shenava",
         "split_floor")


def per_message(stream: bytes) -> list[bytes]:
    """One read per message (and the banner): what a peer with ``TCP_NODELAY``
    (Asterisk's manager) delivers when events are not back to back."""
    banner_end = stream.index(b"\r\n") + 2
    reads = [stream[:banner_end]]
    reads.extend(block + b"\r\n\r\n" for block in stream[banner_end:].split(b"\r\n\r\n")
                 if block)
    return reads


def figures(messages: int, seconds: dict[str, float]) -> dict[str, object]:
    rate = {name: messages / seconds[name] for name in seconds}
    return {
        "like_for_like_full_parse_vs_asterisk_ami": ratio(
            rate["shenava_full_parse"], rate["asterisk_ami"]),
        "like_for_like_full_parse_vs_panoramisk": ratio(
            rate["shenava_full_parse"], rate["panoramisk"]),
        "daemon_path_vs_asterisk_ami": ratio(rate["shenava_daemon_path"], rate["asterisk_ami"]),
        "daemon_path_vs_panoramisk": ratio(rate["shenava_daemon_path"], rate["panoramisk"]),
        "lazy_framing_vs_asterisk_ami": ratio(rate["shenava"], rate["asterisk_ami"]),
        "lazy_framing_vs_floor": ratio(rate["shenava"], rate["split_floor"]),
        "msgs_per_s": {name: round(rate[name]) for name in ORDER},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--read-bytes", default=",".join(READ_SIZES),
                        help="comma-separated read sizes, or 'message' for one message per "
                             "read (default message,1024,4096,65536)")
    args = parser.parse_args(argv)

    stream = build_stream(args.messages)
    mix = stream_mix(args.messages)
    print(
        f"stream: {args.messages} messages ({mix['events']} events, {mix['responses']} "
        f"responses), {len(stream)} bytes; best of {args.repeat}; "
        f"Python {platform.python_version()}"
    )
    contenders = {**IN_MEMORY, "shenava_daemon_path": parse_shenava_daemon}
    by_size: dict[str, object] = {}
    for size in args.read_bytes.split(","):
        reads = per_message(stream) if size == "message" else cut(stream, int(size))
        runs = {name: (lambda parse=contenders[name], reads=reads: parse(reads)) for name in ORDER}
        seconds = best_of(runs, args.repeat, args.messages)
        found = figures(args.messages, seconds)
        by_size[size] = found
        print(f"{size} reads ({len(reads)} reads):" if size == "message"
              else f"{size} B reads ({len(reads)} reads):")
        print(f"  like for like: full parse {found['like_for_like_full_parse_vs_asterisk_ami']}x "
              f"asterisk-ami, {found['like_for_like_full_parse_vs_panoramisk']}x panoramisk")
        print(f"  daemon path:   {found['daemon_path_vs_asterisk_ami']}x asterisk-ami, "
              f"{found['daemon_path_vs_panoramisk']}x panoramisk")
        print(f"  lazy framing (event headers not split, not like for like): "
              f"{found['lazy_framing_vs_asterisk_ami']}x asterisk-ami, "
              f"{found['lazy_framing_vs_floor']} of the floor")
        for name in ORDER:
            print(f"    {name:<20} {args.messages / seconds[name]:>12,.0f} msgs/s "
                  f"({seconds[name] * 1e3:.1f} ms)")
    print(json.dumps({
        "bench": "ami_codec",
        "messages": args.messages,
        "headline": "like for like (every header split) and the daemon path, per read size",
        "by_read_bytes": by_size,
        "python": platform.python_version(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
