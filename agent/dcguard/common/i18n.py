"""The language people read dcguard in: English or Vietnamese, from compiled gettext catalogs.

Every sentence a person reads (risk reasons, CLI tables and summaries,
one-line errors) is written in English in the code, marked with `tr` (or
`trn` when it counts something, `N_` when it is a constant translated later)
and looked up at run time in `locale/<lang>/LC_MESSAGES/dcguard.mo` with the
standard library's gettext, so neither the agent nor the collector needs
Babel to run (Babel only extracts and compiles: `bash i18n/update.sh`).
Placeholders are named (`{host}`, `{job}`) so a translation may reorder them.
Metric names, labels and label values are never passed through here.

Which language: `--lang` on the command line, else the collector's
`[server] language`, else the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`), else
English. English is also the fallback for any text not yet translated.
gettext and the catalog are loaded only when a sentence is first asked for,
so `dcguard-agent run`, which prints nothing but errors, never loads them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gettext

__all__ = [
    "DEFAULT",
    "LANGUAGES",
    "N_",
    "Language",
    "choose",
    "current",
    "from_environment",
    "language",
    "resolve",
    "tr",
    "trn",
]

LANGUAGES = ("en", "vi")
DEFAULT = "en"
DOMAIN = "dcguard"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
# Locale data rather than translation: how a decimal number is written.
_DECIMAL_SEPARATOR = {"vi": ","}
# POSIX order: LC_ALL overrides LC_MESSAGES, which overrides LANG.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")


def N_(message: str) -> str:
    """Marks a constant for the catalog; it is translated where it is shown (Language.tr)."""
    return message


@dataclass(frozen=True)
class Language:
    """One language's catalog and the few things that read differently per language."""

    code: str
    catalog: gettext.NullTranslations

    def tr(self, message: str, /, **values: object) -> str:
        """The message in this language with its named placeholders filled in."""
        text = self.catalog.gettext(message)
        return text.format(**values) if values else text

    def trn(self, singular: str, plural: str, count: int, /, **values: object) -> str:
        """As tr, choosing the form for count (Vietnamese has one form, English two)."""
        return self.catalog.ngettext(singular, plural, count).format(count=count, **values)

    def decimal(self, value: float, places: int = 1) -> str:
        """A number with a fixed count of decimals; Vietnamese writes "3,2", English "3.2"."""
        return f"{value:.{places}f}".replace(".", _DECIMAL_SEPARATOR.get(self.code, "."))

    def span(self, seconds: float) -> str:
        """A duration the way an operator says it: "40 s", "25 min", "26h", "3 days"."""
        seconds = max(seconds, 0.0)
        if seconds < 120:
            return self.tr("{n} s", n=round(seconds))
        if seconds < 7200:
            return self.tr("{n} min", n=round(seconds / 60))
        if seconds < 72 * 3600:
            return self.tr("{n}h", n=round(seconds / 3600))
        return self.tr("{n} days", n=round(seconds / 86400))

    def size(self, value: float) -> str:
        """Bytes in binary units with one decimal: "3.2 GiB" ("3,2 GiB" in Vietnamese)."""
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or unit == "TiB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{self.decimal(value)} {unit}"
            value /= 1024
        raise AssertionError("unreachable")  # pragma: no cover


@functools.cache
def language(code: str) -> Language:
    """The language for a code in LANGUAGES; English text wherever its catalog has none."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}")
    import gettext

    catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=[code], fallback=True)
    return Language(code, catalog)


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the locale asks for ("vi_VN.UTF-8" → "vi"), or None if it names none
    of ours. The environment is not config: a value we do not speak is not an error."""
    env = os.environ if environ is None else environ
    for name in _LOCALE_VARIABLES:
        value = env.get(name, "")
        if value:
            code = value.split(".")[0].split("@")[0].split("_")[0].lower()
            return code if code in LANGUAGES else None
    return None


_chosen: str | None = None


def choose(code: str | None) -> None:
    """Record the language given on the command line (--lang); it wins over everything."""
    global _chosen  # noqa: PLW0603 - one process, one person at the terminal
    if code is not None and code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}")
    _chosen = code


def resolve(configured: str | None = None) -> Language:
    """--lang, else the configured language, else the locale, else English."""
    return language(_chosen or configured or from_environment() or DEFAULT)


def current() -> Language:
    """The language of this process's messages before any config is read (--lang, locale):
    config errors use it, since the file that names a language may be the one that is wrong."""
    return resolve(None)


def tr(message: str, /, **values: object) -> str:
    """current().tr: for one-line errors raised far from any language setting."""
    return current().tr(message, **values)


def trn(singular: str, plural: str, count: int, /, **values: object) -> str:
    """current().trn."""
    return current().trn(singular, plural, count, **values)
