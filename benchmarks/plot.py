"""``--plot FILE.png``: one bar chart per workload, all in one figure.

Each subplot shows, for every role of the workload, one bar per library
(the raw baseline, simplews and each peer).  Where the workload has a raw
baseline the bars are ratios to it (raw = 1.0); otherwise they show the
metric itself with its unit.  The issue's target for simplews
(``workloads.TARGETS``) is drawn as a dashed line over that role's bars.
matplotlib is imported only when a plot is asked for (Agg backend, no
display needed).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.report import Row
from benchmarks.workloads import TARGETS

COLUMNS = 3
BASELINES = ("raw-tcp", "raw-tls")
SIMPLEWS_COLOUR = "tab:red"
BASELINE_COLOUR = "tab:gray"
PEER_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
                "tab:pink", "tab:olive", "tab:cyan")


def by_workload(rows: Sequence[Row]) -> Dict[str, List[Row]]:
    """The rows grouped by workload name, in table order."""
    groups: Dict[str, List[Row]] = {}
    for row in rows:
        groups.setdefault(row.workload.name, []).append(row)
    return groups


def uses_ratios(rows: Sequence[Row]) -> bool:
    """True when a workload's bars are ratios to raw (some row has a ratio)."""
    return any(row.ratio is not None for row in rows)


def bar_value(row: Row, ratios: bool) -> Optional[float]:
    """What a row's bar shows: its ratio to raw, or its median."""
    return row.ratio if ratios else row.median


def _lib_order(rows: Sequence[Row]) -> List[str]:
    """Library labels: the baseline first, then simplews, then the peers as they come."""
    labels = list(dict.fromkeys(row.label for row in rows))
    return sorted(labels, key=lambda lab: (lab not in BASELINES, lab != "simplews"))


def colours(rows: Sequence[Row]) -> Dict[str, str]:
    """One colour per library label, the same in every subplot."""
    peers = [lab for lab in _lib_order(rows) if lab not in BASELINES and lab != "simplews"]
    table = {lab: PEER_COLOURS[i % len(PEER_COLOURS)] for i, lab in enumerate(peers)}
    table.update({lab: BASELINE_COLOUR for lab in BASELINES})
    table["simplews"] = SIMPLEWS_COLOUR
    return table


def _draw_workload(ax: Any, name: str, rows: Sequence[Row],
                   palette: Dict[str, str]) -> List[Tuple[str, Any]]:
    """One subplot; return (label, bar) handles for the legend."""
    ratios = uses_ratios(rows)
    roles = list(dict.fromkeys(row.role for row in rows))
    labels = _lib_order([row for row in rows if bar_value(row, ratios) is not None])
    width = 0.8 / max(1, len(labels))
    handles: List[Tuple[str, Any]] = []
    for i, label in enumerate(labels):
        cells = {row.role: row for row in rows if row.label == label}
        xs, heights = [], []
        for r, role in enumerate(roles):
            value = bar_value(cells[role], ratios) if role in cells else None
            if value is not None:
                xs.append(r - 0.4 + width * (i + 0.5))
                heights.append(value)
        if xs:
            bars = ax.bar(xs, heights, width, color=palette[label], label=label)
            handles.append((label, bars))
    for r, role in enumerate(roles):
        target = TARGETS.get((name, role))
        if target is not None:
            op, limit = target
            ax.hlines(limit, r - 0.45, r + 0.45, colors="black", linestyles="dashed")
            ax.annotate(f"target {op} {limit:g}", (r - 0.45, limit), fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(roles)))
    ax.set_xticklabels(roles)
    ax.set_title(name, fontsize=10)
    unit = rows[0].workload.unit
    better = "higher" if rows[0].workload.higher_is_better else "lower"
    ax.set_ylabel(f"x raw ({better} is better)" if ratios else f"{unit} ({better} is better)",
                  fontsize=8)
    if ratios:
        ax.axhline(1.0, color=BASELINE_COLOUR, linewidth=0.8)
    return handles


def write_plot(rows: Sequence[Row], path: str) -> None:
    """Write the bar charts of ``rows`` (ratios computed) as a PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {name: rs for name, rs in by_workload(rows).items()
              if any(r.median is not None for r in rs)}
    if not groups:
        raise ValueError("nothing to plot: no successful measurement")
    cols = min(COLUMNS, len(groups))
    lines = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(5 * cols, 3.6 * lines), squeeze=False)
    legend: Dict[str, Any] = {}
    palette = colours(rows)
    for ax, (name, group) in zip(axes.flat, groups.items()):
        for label, handle in _draw_workload(ax, name, group, palette):
            legend.setdefault("raw" if label in BASELINES else label, handle)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.legend(list(legend.values()), list(legend.keys()), loc="upper center",
               ncol=min(6, len(legend)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
