"""Small builders for Grafana dashboard JSON (schema 39), so dashboards read as a list of panels.

Every query carries the datasource variable; ids are assigned in order and
positions by a left-to-right layout, so the generated JSON is stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "dcguard"

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL target. table=True: an instant query shown as a table."""

    expr: str
    legend: str = ""
    table: bool = False
    # False: an empty result is normal here (e.g. "servers down" on a good day).
    expect_data: bool = True


@dataclass
class Panel:
    title: str
    kind: str
    queries: list[Query]
    width: int = 12
    height: int = 8
    unit: str = ""
    description: str = ""
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)


def stat(
    title: str,
    expr: str,
    *,
    unit: str = "none",
    width: int = 6,
    thresholds: Json | None = None,
    description: str = "",
    expect_data: bool = True,
) -> Panel:
    defaults: Json = {"thresholds": thresholds or steps(("green", None))}
    return Panel(
        title,
        "stat",
        [Query(expr, expect_data=expect_data)],
        width=width,
        height=4,
        unit=unit,
        description=description,
        defaults=defaults,
        options={
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )


def timeseries(
    title: str,
    *queries: Query,
    unit: str = "none",
    width: int = 12,
    description: str = "",
    stack: bool = False,
    bars: bool = False,
) -> Panel:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 20 if stack else 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "spanNulls": False,
        "showPoints": "never",
    }
    return Panel(
        title,
        "timeseries",
        list(queries),
        width=width,
        unit=unit,
        description=description,
        defaults={"custom": custom},
        options={
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def table(
    title: str,
    *queries: Query,
    width: int = 24,
    height: int = 8,
    unit: str = "none",
    description: str = "",
    hide: tuple[str, ...] = ("Time", "__name__", "job", "instance"),
    rename: dict[str, str] | None = None,
    overrides: list[Json] | None = None,
    sort_by: str = "",
) -> Panel:
    transformations: list[Json] = []
    if len(queries) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append(
        {
            "id": "organize",
            "options": {"excludeByName": dict.fromkeys(hide, True), "renameByName": rename or {}},
        }
    )
    options: Json = {"showHeader": True, "cellHeight": "sm"}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return Panel(
        title,
        "table",
        [Query(q.expr, q.legend, True, q.expect_data) for q in queries],
        width=width,
        height=height,
        unit=unit,
        description=description,
        options=options,
        overrides=overrides or [],
        transformations=transformations,
    )


def bargauge(
    title: str,
    query: Query,
    *,
    unit: str = "none",
    width: int = 12,
    thresholds: Json | None = None,
    description: str = "",
) -> Panel:
    return Panel(
        title,
        "bargauge",
        [query],
        width=width,
        unit=unit,
        description=description,
        defaults={"thresholds": thresholds or steps(("green", None))},
        options={
            "orientation": "horizontal",
            "displayMode": "gradient",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )


def steps(*pairs: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


def server_link(field_name: str = "host") -> Json:
    """A table override: the host column opens that server's dashboard."""
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {
                "id": "links",
                "value": [
                    {
                        "title": "Open server ${__data.fields.host}",
                        "url": "/d/dcguard-server/dcguard-server?var-datasource=${datasource}"
                        "&var-department=${__data.fields.department}&var-host=${__data.fields.host}"
                        "&${__url_time_range}",
                    }
                ],
            }
        ],
    }


def department_link() -> Json:
    return {
        "matcher": {"id": "byName", "options": "department"},
        "properties": [
            {
                "id": "links",
                "value": [
                    {
                        "title": "Open department ${__data.fields.department}",
                        "url": "/d/dcguard-department/dcguard-department"
                        "?var-datasource=${datasource}"
                        "&var-department=${__data.fields.department}&${__url_time_range}",
                    }
                ],
            }
        ],
    }


def variable_datasource() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def variable_query(name: str, label: str, metric_selector: str, *, multi: bool) -> Json:
    """label_values(selector, name): the selector is what tests run against Prometheus."""
    definition = f"label_values({metric_selector}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": definition,
        "query": {
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
            "qryType": 1,
        },
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "hide": 0,
        "options": [],
        "regex": "",
    }


def _target(query: Query, ref: str) -> Json:
    target: Json = {
        "refId": ref,
        "datasource": DS,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "editorMode": "code",
        "range": not query.table,
        "instant": query.table,
    }
    if query.table:
        target["format"] = "table"
    return target


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    defaults = {**panel.defaults}
    if panel.unit:
        defaults["unit"] = panel.unit
    out: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)],
        "fieldConfig": {"defaults": defaults, "overrides": panel.overrides},
        "options": panel.options,
    }
    if panel.description:
        out["description"] = panel.description
    if panel.transformations:
        out["transformations"] = panel.transformations
    return out


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[Json],
    rows: list[tuple[str, list[Panel]]],
) -> Json:
    """A dashboard of titled rows; panels flow left to right and wrap at 24 columns."""
    panels: list[Json] = []
    next_id, y = 1, 0
    for row_title, row_panels in rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        x, line_height = 0, 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "title": "dcguard",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "icon": "external link",
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables},
        "panels": panels,
    }
