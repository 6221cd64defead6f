"""Reading the operator's Asterisk ``.conf`` files with pyst2's ``asterisk.config``.

pyst2's parser is small and has Python 2 leftovers, so it is wrapped here and
fed prepared text rather than the file itself:

- it opens the file without an encoding and never closes it: we read the text
  (UTF-8, undecodable bytes replaced) and hand pyst2 the lines;
- it does not know ``#include``/``#tryinclude`` (they would be parse errors):
  they are expanded in place here, with globs; a relative name is taken
  from the folder of the file first read (Asterisk's config folder, as
  main/config.c config_text_file_load() does), whatever file includes it;
  ``#exec`` cannot be followed and is reported;
- it splits comments on every ``;``: escaped ``\\;`` is protected first, and
  ``;-- block comments --;`` are blanked (keeping line numbers);
- it refuses template categories ``[name](!)``, ``[name](tpl)``, ``[name](+)``:
  the suffix is taken off before parsing and applied here (templates are
  resolved, ``(+)`` appends to the earlier category);
- ``=>`` leaves a ``>`` style marker and values keep their leading space:
  values are stripped here;
- items before the first ``[category]`` are silently dropped: they are reported;
- its ``ParseError`` carries ``(line, message)`` as plain args (not the
  ``e.line``/``e.strerror`` its docstring promises): it becomes
  :class:`AsteriskConfError` naming the real file and line.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_INCLUDE_DEPTH = 10
_ESCAPED_SEMICOLON = "\ue000"
_CATEGORY_RE = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*(;.*)?$")
_DIRECTIVE_RE = re.compile(r"^#\s*(include|tryinclude|exec)\s+(.*?)\s*$", re.IGNORECASE)


class AsteriskConfError(Exception):
    """An Asterisk file could not be read or parsed."""

    code = "asterisk_conf.unreadable"

    def __init__(self, file: Path, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Origin:
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file.name}:{self.line}"


@dataclass(frozen=True)
class ConfItem:
    name: str
    value: str
    origin: Origin


@dataclass
class ConfSection:
    name: str
    origin: Origin
    items: list[ConfItem] = field(default_factory=list)
    is_template: bool = False
    templates: tuple[str, ...] = ()

    def get(self, name: str) -> ConfItem | None:
        """The last item called ``name`` (Asterisk lets a later line override)."""
        found = self.get_all(name)
        return found[-1] if found else None

    def get_all(self, name: str) -> list[ConfItem]:
        wanted = name.lower()
        return [item for item in self.items if item.name.lower() == wanted]


@dataclass(frozen=True)
class ConfNote:
    """Something the reader noticed but could not follow (an ``#exec``, a stray line)."""

    origin: Origin
    message: str


@dataclass
class AsteriskConf:
    """A parsed file: its sections in order (templates resolved) and notes."""

    path: Path
    sections: list[ConfSection]
    notes: list[ConfNote]

    def section(self, name: str) -> ConfSection | None:
        """The non-template section ``name``, with every same-named section merged."""
        matches = [s for s in self.sections if s.name == name and not s.is_template]
        if not matches:
            return None
        merged = ConfSection(name, matches[0].origin)
        for match in matches:
            merged.items.extend(match.items)
        return merged

    def names(self) -> list[str]:
        return [s.name for s in self.sections if not s.is_template]


def read_asterisk_conf(path: Path) -> AsteriskConf:
    """Parse ``path`` (and what it includes) with pyst2; raise :class:`AsteriskConfError`."""
    from asterisk.config import Config as PystConfig
    from asterisk.config import ParseError

    lines: list[str] = []
    origins: list[Origin] = []
    notes: list[ConfNote] = []
    suffixes: dict[int, str] = {}
    _expand(path, lines, origins, notes, suffixes, depth=0, base=path.parent)

    class _PreparedConfig(PystConfig):
        """pyst2's Config, loading our prepared lines instead of opening the file."""

        def load(self) -> None:
            self.raw_lines = lines

    try:
        parsed = _PreparedConfig(str(path))
    except ParseError as exc:
        number, message = (exc.args + (None, "parse error"))[:2]
        origin = origins[number - 1] if isinstance(number, int) and 0 < number <= len(origins) else None
        raise AsteriskConfError(
            origin.file if origin else path, origin.line if origin else None, f"cannot parse: {message}"
        ) from None

    sections: list[ConfSection] = []
    for category in parsed.categories:
        origin = origins[category.number - 1]
        section = ConfSection(_restore(category.name).strip(), origin)
        suffix = suffixes.get(category.number)
        if suffix is not None:
            options = tuple(s.strip() for s in suffix.split(",") if s.strip())
            section.is_template = "!" in options
            section.templates = tuple(o for o in options if o not in ("!", "+"))
            if "+" in options:
                earlier = [s for s in sections if s.name == section.name]
                if earlier:
                    section = earlier[-1]
        for item in category.items:
            section.items.append(
                ConfItem(_restore(item.name).strip(), _restore(item.value).strip(), origins[item.number - 1])
            )
        if not any(s is section for s in sections):
            sections.append(section)

    first_category = min((c.number for c in parsed.categories), default=len(lines) + 1)
    for number, text in enumerate(lines[: first_category - 1], start=1):
        stripped = text.strip()
        if stripped and not stripped.startswith(";"):
            notes.append(ConfNote(origins[number - 1], f"line outside any [section] ignored: {stripped[:60]!r}"))

    _resolve_templates(sections, notes)
    return AsteriskConf(path, sections, notes)


def _expand(
    path: Path,
    lines: list[str],
    origins: list[Origin],
    notes: list[ConfNote],
    suffixes: dict[int, str],
    *,
    depth: int,
    base: Path,
) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AsteriskConfError(path, None, f"cannot read: {exc.strerror or exc}") from None
    in_block_comment = False
    for number, raw in enumerate(text.splitlines(), start=1):
        origin = Origin(path, number)
        line = raw.replace("\\;", _ESCAPED_SEMICOLON)
        line, in_block_comment = _strip_block_comments(line, in_block_comment)
        stripped = line.strip()
        directive = _DIRECTIVE_RE.match(stripped)
        if directive:
            kind, argument = directive.group(1).lower(), directive.group(2).strip().strip('"<>')
            if kind == "exec":
                notes.append(ConfNote(origin, f"#exec {argument} not followed: its output is not checked"))
            elif depth >= MAX_INCLUDE_DEPTH:
                notes.append(ConfNote(origin, f"#{kind} {argument} not followed: includes nested too deep"))
            else:
                target = Path(argument)
                pattern = str(target if target.is_absolute() else base / target)
                matches = sorted(glob.glob(pattern))
                if not matches and kind == "include":
                    raise AsteriskConfError(path, number, f"#include {argument}: no such file")
                for match in matches:
                    _expand(Path(match), lines, origins, notes, suffixes, depth=depth + 1, base=base)
            continue
        category = _CATEGORY_RE.match(stripped)
        if category and category.group(2) is not None:
            suffixes[len(lines) + 1] = category.group(2)
            line = f"[{category.group(1)}]"
        lines.append(line)
        origins.append(origin)


def _strip_block_comments(line: str, inside: bool) -> tuple[str, bool]:
    """Blank ``;-- ... --;`` comments, which may span lines."""
    out: list[str] = []
    rest = line
    while rest:
        if inside:
            end = rest.find("--;")
            if end < 0:
                return "".join(out), True
            rest = rest[end + 3 :]
            inside = False
        else:
            start = rest.find(";--")
            if start < 0:
                out.append(rest)
                break
            out.append(rest[:start])
            rest = rest[start + 3 :]
            inside = True
    return "".join(out), inside


def _restore(text: str) -> str:
    return text.replace(_ESCAPED_SEMICOLON, ";")


def _resolve_templates(sections: list[ConfSection], notes: list[ConfNote]) -> None:
    """Give each section its templates' items first (its own lines override them)."""
    by_name = {s.name: s for s in sections}

    def inherited(section: ConfSection, seen: tuple[str, ...]) -> list[ConfItem]:
        items: list[ConfItem] = []
        for name in section.templates:
            template = by_name.get(name)
            if template is None or name in seen:
                notes.append(ConfNote(section.origin, f"[{section.name}] uses unknown template ({name})"))
                continue
            items.extend(inherited(template, (*seen, name)))
            items.extend(template.items)
        return items

    resolved = {id(s): inherited(s, (s.name,)) for s in sections}
    for section in sections:
        section.items[:0] = resolved[id(section)]
