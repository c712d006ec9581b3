"""Bounding every string, list and map of a message, present and future fields alike.

Generic on purpose, so a field added to the proto later is bounded without
anyone remembering to add a check. Two walks share that rule:

- a fast one (`within_limits`), on every report: per message type a plan
  is made once from the descriptor, listing which fields hold strings,
  lists, maps and sub-messages, so a check is a few C-level calls
  (attrgetter, max, join) per message instead of reflection over every
  field. It answers only "all fine?".
- the exact one (`first_problem`), run only when the fast walk says no, to
  name the first offending field in field order for the error message.

Both apply the same bounds: strings and bytes at most max_string long and
without NUL, repeated and map fields at most max_entries long (except
Report.events, which has its own limit), map keys and string values alike.
Numbers and enums are fixed-size and not walked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from itertools import chain
from operator import attrgetter
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["first_problem", "within_limits"]

# Report.events is bounded by max_events_per_report instead (validate.py).
_UNCOUNTED = frozenset({"events"})
_TEXT = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES})
_CHECKED_TYPES = _TEXT | {FieldDescriptor.TYPE_MESSAGE}


def _is_repeated(field: Any) -> bool:
    # .label works on every protobuf 6.x runtime (the stubs omit it).
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _bad_string(value: str | bytes, max_string: int) -> bool:
    # NUL ends strings in C tools and log viewers the values end up in.
    nul = "\0" if isinstance(value, str) else b"\0"
    return len(value) > max_string or nul in value  # type: ignore[operator]


def _texts_fine(values: Any, empty: str | bytes, max_string: int) -> bool:
    """All of values (all str or all bytes) short enough and without NUL."""
    if not values:
        return True
    if max(map(len, values)) > max_string:
        return False
    if isinstance(empty, str):
        return "\0" not in empty.join(values)
    return b"\0" not in empty.join(values)


class _Getter:
    """Reads some fields of many messages of one type, in C (attrgetter over map)."""

    def __init__(self, names: list[str], *, items: bool = False) -> None:
        """items: the one field named is repeated, and its items are wanted."""
        self._get = attrgetter(*names)
        # attrgetter returns a tuple only for several names.
        self._flatten = items or len(names) > 1

    def __call__(self, messages: list[Message]) -> Iterable[Any]:
        got = map(self._get, messages)
        return chain.from_iterable(got) if self._flatten else got


class _Plan:
    """Which fields of one message type the fast walk looks at, and how."""

    def __init__(self, descriptor: Any) -> None:
        texts: dict[int, list[str]] = {kind: [] for kind in _TEXT}
        repeated_texts: dict[int, list[str]] = {kind: [] for kind in _TEXT}
        counted: list[str] = []
        self.maps: list[tuple[str, bool, bool]] = []  # name, key is text, value is text
        self.singles: list[tuple[str, _Plan]] = []
        self.lists: list[tuple[_Getter, _Plan]] = []
        _building[descriptor.full_name] = self  # before the children: a type may contain itself
        for field in descriptor.fields:
            if field.type not in _CHECKED_TYPES:
                continue
            repeated = _is_repeated(field)
            if repeated and field.name not in _UNCOUNTED:
                counted.append(field.name)
            if field.type in _TEXT:
                (repeated_texts if repeated else texts)[field.type].append(field.name)
            elif _is_map(field):
                entry = field.message_type.fields_by_name
                self.maps.append(
                    (
                        field.name,
                        entry["key"].type == FieldDescriptor.TYPE_STRING,
                        entry["value"].type == FieldDescriptor.TYPE_STRING,
                    )
                )
            else:
                child = _plan(field.message_type)
                if getattr(child, "empty", False):
                    continue  # nothing to check inside (a Timestamp, HostHealth)
                if repeated:
                    self.lists.append((_Getter([field.name], items=True), child))
                else:
                    self.singles.append((field.name, child))
        self.counted = _Getter(counted) if counted else None
        self.texts = {kind: [_Getter(names)] if names else [] for kind, names in texts.items()}
        for kind, names in repeated_texts.items():
            self.texts[kind] += (_Getter([name], items=True) for name in names)
        self.empty = not (
            counted or any(self.texts.values()) or self.maps or self.singles or self.lists
        )

    def values(self, messages: list[Message], kind: int) -> list[Any]:
        """Every str (TYPE_STRING) or bytes (TYPE_BYTES) value directly in messages."""
        out: list[Any] = []
        for get in self.texts[kind]:
            out.extend(get(messages))
        if kind == FieldDescriptor.TYPE_STRING:
            for name, key_text, value_text in self.maps:
                for message in messages:
                    entries = getattr(message, name)
                    out.extend(
                        (
                            *(entries.keys() if key_text else ()),
                            *(entries.values() if value_text else ()),
                        )
                    )
        return out


# Complete plans only: Submit threads read this without the lock.
_plans: dict[str, _Plan] = {}
# Plans under construction, published to _plans once the outermost one is done:
# another thread must never see a plan whose fields are not all set yet.
_building: dict[str, _Plan] = {}
_building_lock = threading.RLock()


def _plan(descriptor: Any) -> _Plan:
    plan = _plans.get(descriptor.full_name)
    if plan is not None:
        return plan
    with _building_lock:
        plan = _plans.get(descriptor.full_name) or _building.get(descriptor.full_name)
        if plan is not None:
            return plan
        outermost = not _building
        try:
            plan = _Plan(descriptor)
            if outermost:
                _plans.update(_building)
        finally:
            if outermost:
                _building.clear()
        return plan


def _all_fine(messages: list[Message], plan: _Plan, max_string: int, max_entries: int) -> bool:
    """The fast walk over all messages of one type at once (see the module docstring)."""
    if not messages:
        return True
    if plan.counted is not None and max(map(len, plan.counted(messages))) > max_entries:
        return False
    if not (
        _texts_fine(plan.values(messages, FieldDescriptor.TYPE_STRING), "", max_string)
        and _texts_fine(plan.values(messages, FieldDescriptor.TYPE_BYTES), b"", max_string)
    ):
        return False
    for name, child in plan.singles:
        present = [getattr(m, name) for m in messages if m.HasField(name)]
        if not _all_fine(present, child, max_string, max_entries):
            return False
    return all(
        _all_fine(list(get(messages)), child, max_string, max_entries) for get, child in plan.lists
    )


def within_limits(message: Message, max_string: int, max_entries: int) -> bool:
    """True if no string, list or map anywhere in message breaks the bounds."""
    return _all_fine([message], _plan(message.DESCRIPTOR), max_string, max_entries)


def first_problem(message: Message, max_string: int, max_entries: int, path: str) -> str | None:
    """The first field, in field order, that breaks the bounds, described; None if none."""
    for field, value in message.ListFields():
        kind = field.type
        if kind not in _CHECKED_TYPES:
            continue  # numbers and enums: fixed size
        repeated = _is_repeated(field)
        if repeated and field.name not in _UNCOUNTED and len(value) > max_entries:
            return f"{path}.{field.name} has {len(value)} entries; at most {max_entries}"
        if kind == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                texts = [t for pair in value.items() for t in pair if isinstance(t, str)]
                if any(_bad_string(t, max_string) for t in texts):
                    return f"{path}.{field.name} has a key or value too long or with NUL"
                continue
            for item in value if repeated else (value,):
                problem = first_problem(item, max_string, max_entries, f"{path}.{field.name}")
                if problem:
                    return problem
        elif any(_bad_string(item, max_string) for item in (value if repeated else (value,))):
            return f"{path}.{field.name} is longer than {max_string} or contains NUL"
    return None
