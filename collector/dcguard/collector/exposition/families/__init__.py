"""Per-host metric families, grouped by what they describe (agent, host, filesystem, …).

A group knows its families and how one host's record becomes samples. Most
samples are rendered once per state change (render); the few that depend on
the clock, like dcguard_agent_up, are rendered at scrape time (render_live).
Names are a contract with dashboards and alert rules: add freely, never rename.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Callable, Protocol

from google.protobuf.message import Message

from dcguard.collector.exposition.text import Family
from dcguard.collector.store import AgentRecord

__all__ = ["AddSample", "Labels", "MetricGroup", "serialized"]

Labels = Sequence[tuple[str, str]]
# add(family_name, labels, value): labels beyond host and department.
AddSample = Callable[[str, Labels, float], None]


class MetricGroup(Protocol):
    families: tuple[Family, ...]
    live_families: tuple[Family, ...]

    def key(self, record: AgentRecord) -> Hashable | None:
        """Everything render() reads besides host and department, or None: always render.

        Equal keys mean equal samples, so the host's previous fragments of
        this group are reused: what rarely changes (disks, backups) is not
        re-rendered with every report.
        """

    def render(self, record: AgentRecord, add: AddSample) -> None:
        """Samples that change only when the host's record changes."""

    def render_live(self, record: AgentRecord, now: float, add: AddSample) -> None:
        """Samples that depend on the clock, rendered at scrape time."""


def serialized(*fields: Iterable[Message]) -> bytes:
    """A digest of the wire bytes of some repeated fields' messages, as a MetricGroup key.

    Each host keeps its keys until its next report: a 16-byte digest instead
    of the bytes themselves (hundreds per host for four disks' SMART data).
    Each message is length-prefixed and each field closed, so different
    splits of the same bytes give different digests.
    """
    digest = hashlib.blake2b(digest_size=16)
    for field in fields:
        for message in field:
            data = message.SerializeToString()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        digest.update(_END_OF_FIELD)
    return digest.digest()


_END_OF_FIELD = b"\xff" * 8  # no length prefix is this large
