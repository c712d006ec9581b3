"""Prometheus text exposition of the per-host families.

Each host's series are rendered once, when its state changes, into one text
fragment per family; a scrape only joins fragments. That keeps /metrics
fast with thousands of hosts: nothing is rebuilt from the database, and no
per-sample objects are made on the scrape path. Only dcguard_agent_up,
which depends on the clock, is computed at scrape time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Family",
    "escape_label_value",
    "family_chunks",
    "format_value",
    "header",
    "render_families",
    "sample",
]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "gauge" or "counter"
    help: str


def escape_label_value(value: str) -> str:
    """Escape a label value so no host or mount name can break the format."""
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value  # the common case, on the ingest path for every sample
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    # The exact type first: ints (byte counts) are most samples.
    if type(value) is int:
        return str(value)
    if isinstance(value, int):  # bool and other int subclasses: True is 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def labels(pairs: Sequence[tuple[str, str]]) -> str:
    """Render {a="x",b="y"} with escaped values."""
    inner = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in pairs)
    return "{" + inner + "}"


def sample(name: str, label_text: str, value: float) -> str:
    return f"{name}{label_text} {format_value(value)}\n"


def header(family: Family) -> str:
    help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.kind}\n"


def family_chunks(families: Iterable[Family], fragments: Iterable[dict[str, str]]) -> list[str]:
    """Every host's fragments in page order, family by family, each family under one header.

    The fragments themselves, not a copy: at 10,000 hosts the joined page
    is about 250 MB, which the HTTP server need never hold at once.
    """
    fragment_list = list(fragments)
    parts: list[str] = []
    for family in families:
        parts.append(header(family))
        name = family.name
        parts.extend([f[name] for f in fragment_list if name in f])
    return parts


def render_families(families: Iterable[Family], fragments: Iterable[dict[str, str]]) -> str:
    """Join every host's fragments family by family, each family under one header."""
    return "".join(family_chunks(families, fragments))
