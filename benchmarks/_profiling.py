"""The daemon's profile over a benchmark's steps, and its top entries per call.

``cprofile`` (the standard library's, deterministic: exact call counts, but its
own cost is per Python call, so small functions look dearer than they are) or
``pyinstrument`` (sampling every millisecond: a truer split of the time, no
call counts; ``pip install pyinstrument``, it is not a dependency).

Both profile only the reactor's thread, from the first step's start to the
last step's end. The time waiting in ``epoll`` is idle, not work: it is taken
out of the totals. Figures are per call placed (microseconds).
"""

from __future__ import annotations

import os
import resource
from collections import defaultdict
from pathlib import Path
from typing import Any

IDLE = ("epoll.poll", "method 'poll' of 'select.epoll'")


def _short(path: str) -> str:
    root = str(Path(__file__).resolve().parents[1]) + os.sep
    for prefix in (root + ".venv" + os.sep, root):
        if path.startswith(prefix):
            path = path[len(prefix):]
    if "site-packages" + os.sep in path:
        path = path.split("site-packages" + os.sep, 1)[1]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


class DaemonProfile:
    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path
        self._profiler: Any = None

    def start(self) -> None:
        self._cpu0 = _cpu_s()
        if self.kind == "pyinstrument":
            try:
                from pyinstrument import Profiler
            except ImportError:
                raise SystemExit("--profiler pyinstrument: pip install pyinstrument") from None
            self._profiler = Profiler(interval=0.001, async_mode="disabled")
            self._profiler.start()
        else:
            import cProfile

            self._profiler = cProfile.Profile()
            self._profiler.enable()

    def stop(self, calls: int, top: int = 15) -> str:
        """Stop, save the raw profile at ``path``, write and return the top entries."""
        if self._profiler is None:
            return ""
        cpu = _cpu_s() - self._cpu0
        if self.kind == "pyinstrument":
            self._profiler.stop()
            session = self._profiler.last_session
            session.save(self.path)
            rows = _pyinstrument_rows(session.root_frame())
        else:
            self._profiler.disable()
            self._profiler.dump_stats(self.path)
            rows = _cprofile_rows(self._profiler)
        self._profiler = None
        text = _report(self.kind, rows, max(1, calls), top, cpu)
        Path(self.path + ".top.txt").write_text(text)
        return text


Row = dict[str, Any]  # name -> self_s, cum_s, calls (None: unknown)


def _cprofile_rows(profiler: Any) -> dict[str, Row]:
    import pstats

    stats = pstats.Stats(profiler)
    rows: dict[str, Row] = {}
    for (file, line, function), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        name = f"{_short(file)}:{line}({function})" if file != "~" else f"{function} (built-in)"
        rows[name] = {"self_s": tottime, "cum_s": cumtime, "calls": ncalls}
    idle = sum(r["self_s"] for n, r in rows.items() if _is_idle(n))
    for r in rows.values():
        if r["cum_s"] >= idle > 0:  # the reactor's loop, around the epoll wait (roughly)
            r["cum_s"] -= idle
    return rows


def _pyinstrument_rows(root: Any) -> dict[str, Row]:
    rows: dict[str, Row] = defaultdict(lambda: {"self_s": 0.0, "cum_s": 0.0, "calls": None})

    def name_of(frame: Any) -> str:
        if frame.file_path == "<built-in>" or not frame.file_path:
            return f"{frame.function} (built-in)"
        return f"{_short(frame.file_path)}:{frame.line_no}({frame.function})"

    def walk(frame: Any, on_stack: frozenset[str], parent: str) -> float:
        """Add the frame's times; return the epoll wait under it (left out of ``cum``)."""
        if frame.is_synthetic:  # "[self]", "[await]": the parent's own time
            rows[parent]["self_s"] += frame.time
            return frame.time if _is_idle(parent) else 0.0
        name = name_of(frame)
        child_time = sum(child.time for child in frame.children)
        rows[name]["self_s"] += max(0.0, frame.time - child_time)
        idle = frame.time - child_time if _is_idle(name) else 0.0
        for child in frame.children:
            idle += walk(child, on_stack | {name}, name)
        if name not in on_stack:  # recursion counts once
            rows[name]["cum_s"] += frame.time - idle
        return idle

    if root is not None:
        walk(root, frozenset(), "")
    return dict(rows)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _is_idle(name: str) -> bool:
    return any(marker in name for marker in IDLE)


def _report(kind: str, rows: dict[str, Row], calls: int, top: int, cpu_s: float) -> str:
    idle = sum(r["self_s"] for name, r in rows.items() if _is_idle(name))
    busy = sum(r["self_s"] for r in rows.values()) - idle
    # The profilers time by the wall clock (a descheduled thread's wait lands
    # on whatever it was running): their shares are what counts, scaled here
    # to the process's CPU time over the same span (profiler's own cost in).
    scale = cpu_s / max(busy, 1e-9)
    lines = [
        f"profiler {kind}: {busy:.2f} s busy by its clock (epoll wait of {idle:.2f} s left "
        f"out), {cpu_s:.2f} s CPU (getrusage, all threads) over {calls} calls = "
        f"{cpu_s * 1e6 / calls:.0f} us CPU per call, profiled; the tables below are in "
        "CPU us per call (profiler's share x that CPU)",
    ]

    def table(title: str, key: str) -> None:
        lines.append("")
        lines.append(f"top {top} by {title}, us per call (share of busy time):")
        lines.append(f"{'self':>8} {'cum':>8} {'share':>6} {'calls/call':>10}  function")
        chosen = sorted(
            ((n, r) for n, r in rows.items() if not _is_idle(n)),
            key=lambda nr: -float(nr[1][key]),
        )
        picked = 0
        for name, row in chosen:
            if key == "cum_s" and row["cum_s"] >= 0.9 * busy:
                continue  # the reactor's loop: everything is under it
            per = row["calls"] / calls if row["calls"] is not None else None
            lines.append(
                f"{row['self_s'] * scale * 1e6 / calls:8.1f} "
                f"{row['cum_s'] * scale * 1e6 / calls:8.1f} "
                f"{100 * row[key] / max(busy, 1e-9):5.1f}% "
                f"{'' if per is None else f'{per:10.2f}':>10}  {name}"
            )
            picked += 1
            if picked >= top:
                break

    table("self time", "self_s")
    table("cumulative time", "cum_s")
    by_area: dict[str, float] = defaultdict(float)
    for name, row in rows.items():
        if not _is_idle(name):
            path = name.split(":", 1)[0]
            area = path if path.count("/") < 1 or "(built-in)" in name else path.split("/")[0]
            if "(built-in)" in name:
                area = "built-ins"
            elif path.startswith(("ami_bridge", "ivr", "shenava")):
                area = path.split("(")[0]
            by_area[area] += row["self_s"]
    lines.append("")
    lines.append("self time by package (our own code by module), us per call:")
    for area, secs in sorted(by_area.items(), key=lambda kv: -kv[1])[: 2 * top]:
        lines.append(f"{secs * scale * 1e6 / calls:8.1f} {100 * secs / max(busy, 1e-9):5.1f}%  {area}")
    return "\n".join(lines) + "\n"
