"""Reading TOML config files into typed values, with one-line errors that name the key.

Every error is a ConfigError whose message says the file, the key and what is
wrong, so the CLI can print it as a single line and exit 2. Unknown keys are
errors too: a misspelt key silently ignored is how a server ends up
unmonitored.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from dcguard.common.durations import parse_duration
from dcguard.common.i18n import N_, tr
from dcguard.common.sizes import SIZE_EXAMPLES, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the old Pythons departments run
    import tomli as tomllib

__all__ = ["ConfigError", "Table", "is_loopback_host", "load_toml", "parse_listen_address"]

T = TypeVar("T")
_MISSING: Any = object()


class ConfigError(Exception):
    """A config file or flag is wrong; the message is one line for the operator."""


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; unreadable or malformed files raise ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            tr("cannot read config {path}: {error}", path=path, error=exc.strerror or exc)
        ) from exc
    try:
        parsed: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
        return parsed
    except UnicodeDecodeError as exc:
        raise ConfigError(tr("config {path}: not UTF-8 text", path=path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(tr("config {path}: invalid TOML: {error}", path=path, error=exc)) from exc


class Table:
    """Typed access to one TOML table; remembers which keys were read.

    Call finish() once every known key has been read: any key left over is
    reported as unknown, with its full dotted path.
    """

    def __init__(
        self,
        data: dict[str, Any],
        path: str = "",
        source: str | Path = "config",
        hint: Callable[[], str] | None = None,
    ) -> None:
        self._data = data
        self._path = path
        self._source = source
        # Said with "is required" errors of an absent table; worked out only then.
        self._hint = hint or str
        self._seen: set[str] = set()

    def key_path(self, key: str) -> str:
        """The dotted path of a key in this table, as the operator wrote it."""
        return f"{self._path}.{key}" if self._path else key

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError about one key of this table."""
        # A file is named in the reader's language only now: translations load on an error.
        source = (
            tr("config {path}", path=self._source)
            if isinstance(self._source, Path)
            else self._source
        )
        return ConfigError(f"{source}: {self.key_path(key)}: {problem}")

    def has(self, key: str) -> bool:
        return key in self._data

    def key_names(self) -> list[str]:
        """The keys present, for free-form tables such as environment variables."""
        return list(self._data)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value as TOML gave it, for keys that accept several types; caller checks it."""
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, tr("is required"))
            return default
        return self._data[key]

    def _get(self, key: str, kind: type[T], kind_name: str, default: Any) -> T:
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, tr("is required{hint}", hint=self._hint()))
            return default  # type: ignore[no-any-return]
        value = self._data[key]
        # bool is an int in Python; a config that says `interval = true` is wrong.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(
                key, tr("must be {kind}, got {value}", kind=tr(kind_name), value=_describe(value))
            )
        return value

    def string(self, key: str, default: Any = _MISSING, *, allow_empty: bool = False) -> str:
        value = self._get(key, str, N_("a string"), default)
        if not allow_empty and value == "" and key in self._data:
            raise self.error(key, tr("must not be empty"))
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        return self._get(key, bool, N_("true or false"), default)

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        value = self._get(key, int, N_("an integer"), default)
        if minimum is not None and value < minimum:
            raise self.error(
                key, tr("must be at least {minimum}, got {value}", minimum=minimum, value=value)
            )
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float | None = None) -> float:
        self._seen.add(key)
        value = self._data.get(key, default)
        if value is _MISSING:
            raise self.error(key, tr("is required{hint}", hint=self._hint()))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(
                key, tr("must be {kind}, got {value}", kind=tr("a number"), value=_describe(value))
            )
        if minimum is not None and value < minimum:
            raise self.error(
                key, tr("must be at least {minimum}, got {value}", minimum=minimum, value=value)
            )
        return float(value)

    def duration(self, key: str, default: Any = _MISSING, *, minimum: float = 0.0) -> float:
        """A Prometheus-style duration string ("15s"), returned in seconds.

        The default is a duration string or seconds (a dataclass field's default).
        """
        if key not in self._data and isinstance(default, (int, float)):
            self._seen.add(key)
            return float(default)
        text = self._get(key, str, N_('a duration string like "15s"'), default)
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if seconds < minimum:
            raise self.error(
                key,
                tr(
                    "must be at least {minimum}, got {value}",
                    minimum=format(minimum, "g") + "s",
                    value=repr(text),
                ),
            )
        return seconds

    def size(
        self, key: str, default: Any = _MISSING, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        """A number of bytes: an integer, or a size string such as "500M" (common.sizes)."""
        self._seen.add(key)
        value = self._data.get(key, default)
        if value is _MISSING:
            raise self.error(key, tr("is required{hint}", hint=self._hint()))
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(
                key,
                tr(
                    "must be {kind}, got {value}",
                    kind=tr("a size like {examples}", examples=tr(SIZE_EXAMPLES)),
                    value=_describe(value),
                ),
            )
        try:
            size = value if isinstance(value, int) else parse_size(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if size < minimum:
            raise self.error(
                key,
                tr(
                    "must be at least {minimum} bytes, got {value}",
                    minimum=minimum,
                    value=repr(value),
                ),
            )
        if maximum is not None and size > maximum:
            raise self.error(
                key,
                tr(
                    "must be at most {maximum} bytes, got {value}",
                    maximum=maximum,
                    value=repr(value),
                ),
            )
        return size

    def path(self, key: str, default: Any = _MISSING) -> Path:
        return Path(self.string(key, default))

    def string_list(
        self, key: str, default: Any = _MISSING, *, allow_empty: bool = True
    ) -> list[str]:
        values = self._get(key, list, N_("a list of strings"), default)
        for item in values:
            if not isinstance(item, str):
                raise self.error(
                    key,
                    tr(
                        "must be {kind}, found {value}",
                        kind=tr("a list of strings"),
                        value=_describe(item),
                    ),
                )
        if not allow_empty and not values:
            raise self.error(key, tr("must not be empty"))
        return list(values)

    def integer_list(
        self, key: str, default: Any = _MISSING, *, minimum: int, maximum: int
    ) -> list[int]:
        """A list of integers, each within [minimum, maximum]."""
        values = self._get(key, list, N_("a list of integers"), default)
        for item in values:
            if (
                isinstance(item, bool)
                or not isinstance(item, int)
                or not (minimum <= item <= maximum)
            ):
                raise self.error(
                    key,
                    tr(
                        "must be {kind}, found {value}",
                        kind=tr(
                            "a list of integers {minimum}-{maximum}",
                            minimum=minimum,
                            maximum=maximum,
                        ),
                        value=_describe(item),
                    ),
                )
        return list(values)

    def names(self) -> list[str]:
        """The keys present, for tables whose keys are names (e.g. one sub-table per host)."""
        return list(self._data)

    def table(self, key: str) -> Table:
        """A sub-table; an absent one reads as empty so defaults apply."""
        value = self._get(key, dict, N_("a table"), {})
        hint = None
        if key not in self._data:
            # An absent table is most often a misspelt one: name the near miss.
            tables = [k for k, v in self._data.items() if isinstance(v, dict)]
            hint = functools.partial(self._near_miss, key, tables)
        return Table(value, self.key_path(key), self._source, hint)

    def _near_miss(self, key: str, tables: list[str]) -> str:
        # Only when an error is being reported: difflib stays out of a running agent.
        import difflib

        close = difflib.get_close_matches(key, tables, n=1)
        if not close:
            return ""
        return tr(
            " ([{table}] is not known: did you mean [{key}]?)",
            table=self.key_path(close[0]),
            key=key,
        )

    def table_list(self, key: str) -> list[Table]:
        """An array of tables ([[key]]); absent reads as empty."""
        values = self._get(key, list, N_("an array of tables"), [])
        tables = []
        for index, item in enumerate(values):
            if not isinstance(item, dict):
                raise self.error(
                    key,
                    tr(
                        "must be {kind}, found {value}",
                        kind=tr("an array of tables"),
                        value=_describe(item),
                    ),
                )
            tables.append(Table(item, f"{self.key_path(key)}[{index}]", self._source))
        return tables

    def check(
        self, key: str, value: T, test: Callable[[T], bool], problem: str | Callable[[], str]
    ) -> T:
        """Raise a ConfigError about key unless test(value) holds. A translated problem is
        given as a function (lambda: tr(...)): it is looked up only when the check fails."""
        if not test(value):
            raise self.error(key, problem if isinstance(problem, str) else problem())
        return value

    def finish(self) -> None:
        """Fail on the first key nobody read: it is misspelt or belongs elsewhere."""
        for key in self._data:
            if key not in self._seen:
                raise self.error(key, tr("unknown key"))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"{value!r}"
    if isinstance(value, dict):
        return tr("a table")
    if isinstance(value, list):
        return tr("a list")
    return f"{type(value).__name__} {value!r}"


def parse_listen_address(text: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port"; raise ValueError with a plain sentence."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(tr('must be "host:port", got {value}', value=repr(text)))
    port = int(port_text)
    if port > 65535:
        raise ValueError(tr("port {port} is out of range in {value}", port=port, value=repr(text)))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(
            tr(
                'must name a host, as in "127.0.0.1:{port}", got {value}',
                port=port,
                value=repr(text),
            )
        )
    return host, port


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only places plaintext is allowed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
