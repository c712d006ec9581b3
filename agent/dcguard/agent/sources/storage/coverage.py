"""The [coverage] table, and which backup job covers a data location.

A location is covered by the first [[backup]] job (in config order) that
- declares a dump of it: `database = "postgresql"`/`"mysql"` covers every
  location of that kind, `database = "/a/data/dir"` the locations inside it; or
- holds it: the job's `source`, a restic job's `paths`, or a path its newest
  snapshot/archive recorded (restic's `paths`, borg's create command line) is the
  location or one of its parents.
Paths are compared as written (normalised, not resolved on disk: no file system is
touched here, so the report cycle can decide it); locations are real paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dcguard.agent.sources import SourceContext
from dcguard.agent.sources.storage.backup_config import BackupJob
from dcguard.agent.sources.storage.config import parse_storage
from dcguard.agent.sources.storage.data_locations import (
    DataLocation,
    DiscoveryContext,
    DiscoveryLimits,
)
from dcguard.common.config import Table
from dcguard.common.i18n import tr

__all__ = ["CoverageSettings", "configure_feed", "covering_job", "parse_coverage"]


@dataclass(frozen=True)
class CoverageSettings:
    interval: float
    context: DiscoveryContext
    limits: DiscoveryLimits


def _absolute_list(table: Table, key: str, default: list[str]) -> tuple[str, ...]:
    values = table.string_list(key, default)
    for value in values:
        if not value.startswith("/"):
            raise table.error(
                key, tr("entries must be absolute paths, found {value}", value=repr(value))
            )
    return tuple(os.path.normpath(v) for v in values)


def _absolute(table: Table, key: str, default: str) -> str:
    value = table.string(key, default)
    return table.check(
        key,
        value,
        lambda v: v.startswith("/"),
        lambda: tr("must be an absolute path, got {value}", value=repr(value)),
    )


def parse_coverage(config: Table, context: SourceContext, mounts_file: str) -> CoverageSettings:
    """Read and check [coverage]; every problem is a one-line ConfigError naming the key."""
    table = config.table("coverage")
    defaults = DiscoveryContext()
    result = CoverageSettings(
        interval=table.duration("interval", "1h", minimum=1.0),
        context=DiscoveryContext(
            proc_root=context.proc_root,
            mounts_file=Path(mounts_file),
            postgresql_conf_dir=Path(
                _absolute(table, "postgresql_conf_dir", str(defaults.postgresql_conf_dir))
            ),
            mysql_conf=Path(_absolute(table, "mysql_conf", str(defaults.mysql_conf))),
            smb_conf=Path(_absolute(table, "smb_conf", str(defaults.smb_conf))),
            roots=_absolute_list(table, "roots", list(defaults.roots)),
            paths=_absolute_list(table, "paths", []),
            exclude=_absolute_list(table, "exclude", []),
        ),
        limits=DiscoveryLimits(
            max_files=table.integer("max_files", DiscoveryLimits.max_files, minimum=1),
            max_seconds=table.duration(
                "max_duration", f"{DiscoveryLimits.max_seconds:g}s", minimum=0.1
            ),
        ),
    )
    table.finish()
    return result


def configure_feed(config: Table, context: SourceContext) -> CoverageSettings:
    """Read [coverage] (and [storage]'s mount table) and set the agent's shared discovery.

    Every source that needs the data locations calls this from its factory, so
    the one discovery thread has its settings whichever of them is enabled.
    """
    settings = parse_coverage(config, context, str(parse_storage(config, context).mounts_file))
    context.discoveries.configure(settings.interval, settings.context, settings.limits)
    return settings


def _holds(top: str, path: str) -> bool:
    top = os.path.normpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _dumps(job: BackupJob, location: DataLocation) -> bool:
    if not job.database:
        return False
    if job.database.startswith("/"):
        return _holds(job.database, location.path)
    return job.database == location.kind


def covering_job(
    location: DataLocation, jobs: Iterable[BackupJob], recorded: Mapping[str, Iterable[str]]
) -> str:
    """The name of the first job that covers location; "" when none does.

    recorded: per job name, the paths its newest snapshot/archive holds.
    """
    for job in jobs:
        sources = [job.source, *job.paths, *recorded.get(job.name, ())]
        if _dumps(job, location) or any(
            _holds(source, location.path) for source in sources if source.startswith("/")
        ):
            return job.name
    return ""
