"""How fast Shenava's AMI codec parses a real stream, against the alternatives.

    .venv/bin/python benchmarks/ami_codec.py [--messages 50000] [--repeat 5]

In memory, no socket: a stream of ``--messages`` real captured messages (see
``_common``) is cut into 64 KiB reads, as a busy AMI socket delivers it, and
each contender parses the same reads in the same process, rounds interleaved;
the best round of each counts.

- ``shenava``: ``AMIDecoder.feed`` per read; every message fully parsed into
  headers.
- ``asterisk_ami``: asterisk-ami 0.1.7's ``AMIClient._next_pack`` over a
  stand-in socket handing out the same reads, then ``Response.read`` or
  ``Event.read`` per pack, as ``fire_recv_pack`` does (no listeners).
- ``panoramisk``: panoramisk 1.4's ``AMIProtocol.data_received`` (its split on
  blank lines and ``Message.from_line``), UTF-8 as its ``Manager`` sets it.
- ``split_floor``: framing plus one UTF-8 decode per read and ``str.split``
  into message texts, no header parsing (``_common.SplitFloor``): the bound
  no parser can beat.

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
    READ_BYTES,
    best_of,
    build_stream,
    cut,
    stream_mix,
    summary,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--read-bytes", type=int, default=READ_BYTES)
    args = parser.parse_args(argv)

    stream = build_stream(args.messages)
    reads = cut(stream, args.read_bytes)
    runs = {name: (lambda parse=parse: parse(reads)) for name, parse in IN_MEMORY.items()}
    seconds = best_of(runs, args.repeat, args.messages)

    mix = stream_mix(args.messages)
    print(
        f"stream: {args.messages} messages ({mix['events']} events, {mix['responses']} "
        f"responses), {len(stream)} bytes, {len(reads)} reads of {args.read_bytes} bytes; "
        f"best of {args.repeat}; Python {platform.python_version()}"
    )
    for name, elapsed in seconds.items():
        print(f"  {name:<13} {args.messages / elapsed:>12,.0f} msgs/s  ({elapsed * 1e3:.1f} ms)")
    print(json.dumps(summary("ami_codec", args.messages, seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
