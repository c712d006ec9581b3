"""Sizes in config files: one grammar for every key that holds a number of bytes.

A plain integer is bytes. A number (fractions allowed: "1.5G") followed by a
unit, case-insensitive, with optional space between: B; K, M, G, T and KiB,
MiB, GiB, TiB are powers of 1024 (as restic, borg, systemd and `ls -h` read
"500M"); KB, MB, GB, TB are powers of 1000 (as disk vendors write them).
"""

from __future__ import annotations

import re

from dcguard.common.i18n import N_, tr

__all__ = ["SIZE_EXAMPLES", "parse_size"]

_FACTORS: dict[str, int] = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgt", start=1):
    _FACTORS.update(
        {_letter: 1024**_power, f"{_letter}ib": 1024**_power, f"{_letter}b": 1000**_power}
    )
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
# Shown in errors, translated there (tr(SIZE_EXAMPLES)).
SIZE_EXAMPLES = N_('"500M", "512MiB", "10GB" or a byte count')


def parse_size(text: str) -> int:
    """Bytes in a size such as "500M" or "512mib"; ValueError with a plain sentence."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _FACTORS:
        raise ValueError(
            tr(
                "must be {kind}, got {value}",
                kind=tr("a size like {examples}", examples=tr(SIZE_EXAMPLES)),
                value=repr(text),
            )
        )
    number = match.group(1)
    if "." in number:  # whole bytes: "1.5K" is 1536, "0.5B" rounds down to 0
        whole, fraction = number.split(".")
        scale: int = 10 ** len(fraction)
        return (int(whole) * scale + int(fraction)) * _FACTORS[unit] // scale
    return int(number) * _FACTORS[unit]
