"""The browser pages: the supervisor wallboard (``/wallboard``), the agent desk (``/desk``),
the supervisor's review (``/review``) and the sign-in page (``/sign-in``, where the other two send a browser that is not signed in).

Plain HTML, small scripts and one stylesheet, shipped as package data in
``shenava/http/static/``, and the charting library (npm's ``uplot``, copied into
``static/vendor/`` by ``scripts/bootstrap``; nothing fetched from elsewhere). The
pages carry no data: the scripts follow ``api/events`` (the figures pushed once
a second) and send the pages' ``POST``s with relative URLs, so they work
as well at ``/wallboard`` as behind a proxy at ``/shenava/wallboard``
(docs/wallboard.md).

Each page is rendered in one language, ``?lang=fa`` or ``?lang=en`` (default:
the first of ``[site] languages`` that has texts, else Persian): ``lang`` and
``dir`` on ``<html>``, the texts of ``static/i18n.json`` filled in, and the same
texts handed to the script as a JSON data block for what it writes later.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from shenava.http.errors import MethodNotAllowedError, NotFoundError
from shenava.http.jsonapi import write_error

LANGUAGES = ("fa", "en")
FALLBACK_LANGUAGE = "fa"
DIRECTION = {"fa": "rtl", "en": "ltr"}
PAGES = {"wallboard": "wallboard.html", "desk": "desk.html", "review": "review.html",
         "sign-in": "signin.html"}
ASSETS = {
    "shenava.js": b"text/javascript; charset=utf-8",
    "charts.js": b"text/javascript; charset=utf-8",
    "desk-actions.js": b"text/javascript; charset=utf-8",
    "supervisor.js": b"text/javascript; charset=utf-8",
    "shenava.css": b"text/css; charset=utf-8",
}
VENDOR = {
    # npm's uPlot (package.json), copied here by scripts/bootstrap after `npm ci`; not in git.
    "vendor/uPlot.iife.min.js": b"text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": b"text/css; charset=utf-8",
}
STRINGS_FILE = "i18n.json"
SECURITY_HEADERS = {
    # Only this origin's script, style, API and recordings: nothing inline, nothing from elsewhere.
    b"content-security-policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"media-src 'self'; "
        b"img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    # Small files that change with an upgrade: revalidate rather than keep.
    b"cache-control": b"no-cache",
}
_PLACEHOLDER = re.compile(r"\{\{([a-z0-9_]+)\}\}")
_COMPUTED = frozenset({"lang", "dir", "other_lang", "other_dir", "other_lang_href", "other_lang_name",
                       "strings_json"})


class PageError(RuntimeError):
    """A page template or the texts file is inconsistent (a packaging bug)."""

    code = "http.page_broken"


def read_static(name: str) -> bytes:
    return resources.files("shenava.http").joinpath("static", name).read_bytes()


def load_strings() -> dict[str, dict[str, str]]:
    """The pages' texts per language; every language must have the same keys."""
    raw = json.loads(read_static(STRINGS_FILE).decode("utf-8"))
    strings = {lang: dict(raw[lang]) for lang in LANGUAGES}
    keys = set(strings[LANGUAGES[0]])
    for lang in LANGUAGES[1:]:
        if set(strings[lang]) != keys:
            raise PageError(f"{STRINGS_FILE}: {lang} lacks or adds {sorted(keys ^ set(strings[lang]))}")
    return strings


def default_language(config: Any) -> str:
    """The first of ``[site] languages`` the pages have texts for; else Persian."""
    site_languages = getattr(getattr(config, "site", None), "languages", ())
    return next((lang for lang in site_languages if lang in LANGUAGES), FALLBACK_LANGUAGE)


def render_page(template: str, strings: Mapping[str, str], lang: str, args: Mapping[str, str]) -> str:
    """The template with its ``{{key}}`` placeholders filled, every text HTML-escaped."""
    other = next(lang_ for lang_ in LANGUAGES if lang_ != lang)
    computed = {
        "lang": lang,
        "dir": DIRECTION[lang],
        "other_lang": other,  # the switch's hreflang and lang: a code, not the language's name
        "other_dir": DIRECTION[other],
        "other_lang_href": "?" + urlencode({**args, "lang": other}),
        "other_lang_name": strings["other_language"],
    }
    # The script's copy of the texts: a JSON data block, "<" escaped so that no text
    # can close the element.
    data = json.dumps(strings, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "strings_json":
            return data
        if key in computed:
            return html.escape(computed[key])
        return html.escape(strings[key])

    return _PLACEHOLDER.sub(fill, template)


class PageResource(Resource):
    """``GET /wallboard`` or ``/desk``: the page in the asked-for language."""

    isLeaf = True

    def __init__(self, page: str, strings: Mapping[str, Mapping[str, str]], default_lang: str) -> None:
        super().__init__()
        self._template = read_static(PAGES[page]).decode("utf-8")
        missing = {
            key for key in _PLACEHOLDER.findall(self._template)
            if key not in _COMPUTED and key not in strings[LANGUAGES[0]]
        }
        if missing:
            raise PageError(f"{PAGES[page]} uses texts missing from {STRINGS_FILE}: {sorted(missing)}")
        self._strings = strings
        self._default = default_lang

    def render(self, request: Request) -> bytes | int:
        if _refused_method(request):
            return NOT_DONE_YET
        rest = request.postpath or []
        if rest == [b""]:
            # "/wallboard/": the page's relative URLs would point below it.
            request.redirect(b"../" + (request.prepath or [b""])[-1])
            request.finish()
            return NOT_DONE_YET
        if rest:
            write_error(request, NotFoundError(f"no such page: {request.path.decode('utf-8', 'replace')}"))
            return NOT_DONE_YET
        args = _args(request)
        lang = args.get("lang", "")
        if lang not in LANGUAGES:
            lang = self._default
        body = render_page(self._template, self._strings[lang], lang, args).encode("utf-8")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        return b"" if request.method == b"HEAD" else body


class HomeResource(Resource):
    """``GET /``: the name people type (``http://wallboard.example.org/``) leads to the
    sign-in page, which sends a signed-in person on to their role's page (an agent's desk,
    a supervisor's wallboard). Relative, so ``/shenava/`` behind a proxy leads to
    ``/shenava/sign-in``."""

    isLeaf = True

    def render(self, request: Request) -> bytes | int:
        if _refused_method(request):
            return NOT_DONE_YET
        if request.postpath not in ([], [b""]):
            write_error(request, NotFoundError(f"no such page: {request.path.decode('utf-8', 'replace')}"))
            return NOT_DONE_YET
        lang = _args(request).get("lang", "")
        target = "sign-in" + ("?" + urlencode({"lang": lang}) if lang in LANGUAGES else "")
        request.setResponseCode(303)
        request.setHeader(b"location", target.encode("ascii"))
        request.setHeader(b"content-length", b"0")
        return b""


def _refused_method(request: Request) -> bool:
    """Answer 405 to anything but GET and HEAD; True when it did."""
    if request.method in (b"GET", b"HEAD"):
        return False
    write_error(request, MethodNotAllowedError(request.method.decode("ascii", "replace"), ("GET", "HEAD")))
    return True


class AssetsResource(Resource):
    """``/static/{name}``: the pages' script and stylesheet, from memory (no file paths)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._files = {name: (read_static(name), kind) for name, kind in ASSETS.items()}
        for name, kind in VENDOR.items():
            try:
                self._files[name] = (read_static(name), kind)
            except OSError:  # not installed: the pages say charts are missing
                pass

    def render(self, request: Request) -> bytes | int:
        if _refused_method(request):
            return NOT_DONE_YET
        rest = request.postpath or []
        asked = b"/".join(rest).decode("utf-8", "replace") if 1 <= len(rest) <= 2 else ""
        found = self._files.get(asked)
        if found is None:
            write_error(request, NotFoundError(f"no such file: {request.path.decode('utf-8', 'replace')}"))
            return NOT_DONE_YET
        body, kind = found
        request.setHeader(b"content-type", kind)
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        return b"" if request.method == b"HEAD" else body


def mount_pages(root: Resource, config: Any) -> None:
    """Put ``/`` (to the sign-in page), the pages and ``/static/...`` under ``root``."""
    strings = load_strings()
    lang = default_language(config)
    for page in PAGES:
        root.putChild(page.encode("ascii"), PageResource(page, strings, lang))
    root.putChild(b"", HomeResource())
    root.putChild(b"static", AssetsResource())


def _args(request: Request) -> dict[str, str]:
    """The query's ``lang`` and ``agent`` (the only ones the pages use), first value each."""
    out: dict[str, str] = {}
    given: dict[bytes, list[bytes]] = request.args or {}
    for name in ("agent", "lang", "next"):
        values = given.get(name.encode("ascii"))
        if values:
            out[name] = values[0].decode("utf-8", "replace")[:64]
    return out
