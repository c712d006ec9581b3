"""`dcguard-agent status`: the spool and delivery as a second process sees them.

Opens the spool read-only and reads the runner's delivery.json; takes no
lock and writes nothing, so it is safe while `dcguard-agent run` runs.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from dcguard.agent.config import AgentConfig
from dcguard.agent.delivery.loop import STATUS_FILE
from dcguard.agent.delivery.spool import Spool
from dcguard.agent.state_dir import AgentState
from dcguard.common.i18n import DEFAULT, N_, Language, language

__all__ = ["gather_status", "render_status"]


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _delivery(config: AgentConfig) -> dict[str, Any]:
    try:
        loaded = json.loads((config.state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def gather_status(config: AgentConfig, probes: dict[str, str]) -> dict[str, Any]:
    """Everything status shows, as a JSON-ready dict (probes: address → answer)."""
    state = AgentState(config.state_dir)
    spool = Spool(state.spool_dir, config.spool, read_only=True)
    spool.open()
    stats = spool.stats()
    delivery = _delivery(config)
    address = delivery.get("address") or config.collector.addresses[0]
    return {
        "host": config.host,
        "state_dir": str(config.state_dir),
        "instance_id": state.instance_id,
        "spool_reports": stats.reports,
        "spool_bytes": stats.bytes,
        "oldest_unsent": _iso(stats.oldest_collected),
        "last_sequence": stats.last_sequence,
        "acked_sequence": stats.acked_sequence,
        "dropped_total": stats.dropped_total,
        "rejected_total": stats.rejected_total,
        "unreadable_bytes": stats.skipped_bytes,
        "collector_in_use": address,
        "delivery_failing": delivery.get("failing") or None,
        "last_delivery": _iso(delivery.get("last_success")),
        "collectors": probes,
    }


# The human form's label of each field: in English the JSON key itself.
_LABELS = {
    "host": N_("host"),
    "state_dir": N_("state_dir"),
    "instance_id": N_("instance_id"),
    "spool_reports": N_("spool_reports"),
    "spool_bytes": N_("spool_bytes"),
    "oldest_unsent": N_("oldest_unsent"),
    "last_sequence": N_("last_sequence"),
    "acked_sequence": N_("acked_sequence"),
    "dropped_total": N_("dropped_total"),
    "rejected_total": N_("rejected_total"),
    "unreadable_bytes": N_("unreadable_bytes"),
    "collector_in_use": N_("collector_in_use"),
    "delivery_failing": N_("delivery_failing"),
    "last_delivery": N_("last_delivery"),
    "collector": N_("collector"),
}


# Probe answers carrying a gRPC status code, as _probe in commands.py writes them.
_CODED = re.compile(r"(unreachable|not serving) \((\w+)\)")
_CODED_TEXT = {"unreachable": N_("unreachable ({code})"), "not serving": N_("not serving ({code})")}


def _answer(answer: str, lang: Language) -> str:
    coded = _CODED.fullmatch(answer)
    if coded:
        return lang.tr(_CODED_TEXT[coded.group(1)], code=coded.group(2))
    return lang.tr(answer)


def render_status(result: dict[str, Any], lang: Language | None = None) -> str:
    """The human-readable form: one aligned line per field, labelled in lang (--json keeps
    the keys and the collectors' answers as they are, for scripts)."""
    lang = lang or language(DEFAULT)
    rows = [
        (lang.tr(_LABELS.get(key, key)), "-" if result[key] is None else result[key])
        for key in result
        if key != "collectors"
    ]
    for address, answer in result["collectors"].items():
        marker = lang.tr(" (in use)") if address == result["collector_in_use"] else ""
        rows.append((lang.tr("collector"), f"{address}: {_answer(answer, lang)}{marker}"))
    width = max([18, *(len(label) for label, _ in rows)])
    return "\n".join(f"{label:<{width}} {value}" for label, value in rows)
