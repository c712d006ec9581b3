"""The [risk] table: weights and thresholds, with per-department and per-host overrides.

Every key may appear at the top of [risk], in [risk.department.<name>] and in
[risk.host.<name>]; the most specific scope wins, key by key. Weights live in
a `weights` sub-table of each scope. Errors are one line naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from dcguard.common.config import Table
from dcguard.common.i18n import tr
from dcguard.common.names import check_name

__all__ = ["DEFAULT_WEIGHTS", "REASONS", "History", "RiskConfig", "Thresholds", "parse_risk"]

# The reason label values of dcguard_data_loss_risk (DESIGN.md); order = exposition order.
REASONS = (
    "agent_silent",
    "backup_missing",
    "backup_stale",
    "backup_failed",
    "backup_unverified",
    "backup_same_device",
    "backup_unrestorable",
    "no_offsite_copy",
    "data_not_backed_up",
    "disk_smart_failing",
    "disk_smart_degrading",
    "raid_degraded",
    "filesystem_readonly",
    "filesystem_almost_full",
    "filesystem_filling_fast",
    "disk_io_errors",
    "ransomware_suspected",
)

# Points each active reason adds to the 0-100 score. Losing data outright
# (no backup, a failing disk, a degraded array) weighs most; conditions that
# only make a loss likelier or harder to recover from weigh less.
DEFAULT_WEIGHTS: dict[str, int] = {
    "agent_silent": 30,
    "backup_missing": 50,
    "backup_stale": 40,
    "backup_failed": 40,
    "backup_unverified": 15,
    "backup_same_device": 30,
    # A backup that cannot be restored is as good as none.
    "backup_unrestorable": 50,
    # Backups exist but one lost server (fire, theft, ransomware) takes them along.
    "no_offsite_copy": 20,
    # A database or share no job holds: its loss is total, like a job that never ran.
    "data_not_backed_up": 50,
    "disk_smart_failing": 60,
    "disk_smart_degrading": 30,
    "raid_degraded": 50,
    "filesystem_readonly": 40,
    "filesystem_almost_full": 20,
    "filesystem_filling_fast": 30,
    "disk_io_errors": 30,
    # Files are being encrypted or wiped now: the whole score on its own (the cap), so a
    # host showing it ranks first, and listed first on that host (docs/risk.md).
    "ransomware_suspected": 100,
}

# Filesystems that are read-only (and 100 % full) by construction.
DEFAULT_READONLY_FSTYPES = ("iso9660", "udf", "squashfs", "erofs", "cramfs", "romfs")
# Backblaze's five failure-predicting SMART attributes.
DEFAULT_SMART_ATTRIBUTES = (5, 187, 188, 197, 198)


@dataclass(frozen=True)
class Thresholds:
    """The resolved settings for one host."""

    # agent_silent after this long without a report; 0 = the agent_up window.
    silent_after_seconds: float = 0.0
    # A backup whose agent sent no rpo gets this objective.
    default_rpo_seconds: float = 26 * 3600.0
    almost_full_avail_ratio: float = 0.10
    filling_fast_horizon_seconds: float = 24 * 3600.0
    # Only filesystems with less than this share available are predicted
    # (node-mixin's 40 %): a big, mostly empty disk is not an emergency.
    filling_fast_max_avail_ratio: float = 0.40
    smart_attributes: tuple[int, ...] = DEFAULT_SMART_ATTRIBUTES
    # Raw values up to this are accepted: set it per host to a disk's known,
    # stable count so only a rise beyond it fires again.
    smart_raw_tolerated: int = 0
    nvme_percentage_used_limit: int = 100
    io_errors_window_seconds: float = 24 * 3600.0
    readonly_expected_fstypes: tuple[str, ...] = DEFAULT_READONLY_FSTYPES
    readonly_expected_mountpoints: tuple[str, ...] = ()
    ignore_mountpoints: tuple[str, ...] = ()
    # ransomware_suspected stays active this long after the agent's newest sign: a
    # night's encryption is still on the morning's list (there is no acknowledgement).
    ransomware_window_seconds: float = 24 * 3600.0
    weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


@dataclass(frozen=True)
class History:
    """How filesystem samples are kept for the filling-fast trend (global only:
    samples are recorded before a host's department is known)."""

    window_seconds: float = 6 * 3600.0
    # The trend needs at least this much history before it may predict anything.
    min_span_seconds: float = 3600.0
    # At most one sample per filesystem this often (downsampling).
    sample_every_seconds: float = 300.0

    @property
    def retention_seconds(self) -> float:
        """Samples older than the window (plus one step) are deleted."""
        return self.window_seconds + self.sample_every_seconds


@dataclass(frozen=True)
class RiskConfig:
    base: Thresholds = field(default_factory=Thresholds)
    history: History = field(default_factory=History)
    departments: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_host(self, host: str, department: str) -> Thresholds:
        """The base settings with the department's, then the host's, overrides applied."""
        dept = self.departments.get(department)
        own = self.hosts.get(host)
        if dept is None and own is None:
            return self.base
        resolved = self.base
        for changes in (dept, own):
            if changes:
                plain = {k: v for k, v in changes.items() if k != "weights"}
                resolved = replace(
                    resolved, **plain, weights={**resolved.weights, **changes.get("weights", {})}
                )
        return resolved

    @property
    def longest_ransomware_window(self) -> float:
        """The longest ransomware_window of any scope: how far back signs are read."""
        scoped: list[float] = [
            s["ransomware_window_seconds"]
            for s in (*self.departments.values(), *self.hosts.values())
            if "ransomware_window_seconds" in s
        ]
        return max([self.base.ransomware_window_seconds, *scoped])


def _ratio(table: Table, key: str) -> float:
    value = table.number(key)
    table.check(
        key,
        value,
        lambda v: 0 <= v <= 1,
        lambda: tr("must be between 0 and 1, got {value}", value=value),
    )
    return value


def _smart_ids(table: Table, key: str) -> tuple[int, ...]:
    return tuple(table.integer_list(key, minimum=1, maximum=255))


def _strings(table: Table, key: str) -> tuple[str, ...]:
    return tuple(table.string_list(key))


def _duration(table: Table, key: str) -> float:
    return table.duration(key)


def _positive_duration(table: Table, key: str) -> float:
    return table.duration(key, minimum=1.0)


# key → (Thresholds field, reader). Every scope reads exactly these keys.
_KEYS: dict[str, tuple[str, Callable[[Table, str], Any]]] = {
    "silent_after": ("silent_after_seconds", _duration),
    "default_rpo": ("default_rpo_seconds", _positive_duration),
    "almost_full_avail_ratio": ("almost_full_avail_ratio", _ratio),
    "filling_fast_horizon": ("filling_fast_horizon_seconds", _positive_duration),
    "filling_fast_max_avail_ratio": ("filling_fast_max_avail_ratio", _ratio),
    "smart_attributes": ("smart_attributes", _smart_ids),
    "smart_raw_tolerated": ("smart_raw_tolerated", lambda t, k: t.integer(k, minimum=0)),
    "nvme_percentage_used_limit": (
        "nvme_percentage_used_limit",
        lambda t, k: t.integer(k, minimum=1),
    ),
    "io_errors_window": ("io_errors_window_seconds", _positive_duration),
    "readonly_expected_fstypes": ("readonly_expected_fstypes", _strings),
    "readonly_expected_mountpoints": ("readonly_expected_mountpoints", _strings),
    "ignore_mountpoints": ("ignore_mountpoints", _strings),
    "ransomware_window": ("ransomware_window_seconds", _positive_duration),
}


def _parse_scope(table: Table) -> dict[str, Any]:
    """The keys present in one scope, parsed, as Thresholds field → value."""
    changes: dict[str, Any] = {}
    for key, (attr, read) in _KEYS.items():
        if table.has(key):
            changes[attr] = read(table, key)
    if table.has("weights"):
        weights_table = table.table("weights")
        weights = {}
        for reason in REASONS:
            if weights_table.has(reason):
                weights[reason] = weights_table.integer(reason, minimum=0)
                if weights[reason] > 100:
                    raise weights_table.error(
                        reason,
                        tr(
                            "must be at most {maximum}, got {value}",
                            maximum=100,
                            value=weights[reason],
                        ),
                    )
        weights_table.finish()
        changes["weights"] = weights
    return changes


def _scopes(table: Table, key: str) -> dict[str, dict[str, Any]]:
    scopes_table = table.table(key)
    scopes = {}
    for name in scopes_table.names():
        problem = check_name(name)
        if problem:
            raise scopes_table.error(
                name, tr("not a valid {key} name: {problem}", key=key, problem=problem)
            )
        scope = scopes_table.table(name)
        scopes[name] = _parse_scope(scope)
        scope.finish()
    scopes_table.finish()
    return scopes


def parse_risk(table: Table) -> RiskConfig:
    """Read [risk]; call with root.table("risk")."""
    changes = _parse_scope(table)
    weights = {**DEFAULT_WEIGHTS, **changes.pop("weights", {})}
    base = replace(Thresholds(), **changes, weights=weights)
    history = History(
        window_seconds=table.duration("filling_fast_window", "6h", minimum=600),
        min_span_seconds=table.duration("filling_fast_min_span", "1h", minimum=60),
        sample_every_seconds=table.duration("history_sample_every", "5m", minimum=1),
    )
    if history.min_span_seconds > history.window_seconds:
        raise table.error(
            "filling_fast_min_span", tr("must not be longer than filling_fast_window")
        )
    if history.sample_every_seconds * 3 > history.window_seconds:
        raise table.error(
            "history_sample_every", tr("must leave room for 3 samples in filling_fast_window")
        )
    config = RiskConfig(
        base=base,
        history=history,
        departments=_scopes(table, "department"),
        hosts=_scopes(table, "host"),
    )
    table.finish()
    return config
