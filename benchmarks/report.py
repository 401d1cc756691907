"""Turning samples into the results table (plain text and Markdown)."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Dict, List, Optional, Sequence, Set, Tuple

from benchmarks.workloads import TARGETS, Workload


@dataclasses.dataclass
class Row:
    """All samples of one (workload, role, library) cell."""

    workload: Workload
    role: str
    lib: str
    samples: List[float] = dataclasses.field(default_factory=list)
    cpu_samples: List[float] = dataclasses.field(default_factory=list)
    extra_samples: List[float] = dataclasses.field(default_factory=list)
    errors: List[str] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)
    # round -> CPU us/op of that round's sample (the metric where there is no CPU figure)
    by_round: Dict[int, float] = dataclasses.field(default_factory=dict)
    ratio: Optional[float] = None
    cpu_ratio: Optional[float] = None

    @property
    def label(self) -> str:
        """The library's name in the table (the baseline of a TLS row is raw TLS)."""
        if self.lib == "raw-tcp" and self.workload.tls:
            return "raw-tls"
        return self.lib

    @property
    def median(self) -> Optional[float]:
        """Median of the successful samples, or None."""
        return statistics.median(self.samples) if self.samples else None

    @property
    def cpu_median(self) -> Optional[float]:
        """Median CPU microseconds per operation of the library's process."""
        return statistics.median(self.cpu_samples) if self.cpu_samples else None

    @property
    def extra_text(self) -> str:
        """The median of the workload's second figure with its label, e.g. 'p99 1,234 us'."""
        if not self.extra_samples:
            return ""
        label, unit = self.workload.extra
        value = statistics.median(self.extra_samples)
        return f"{label} {value:,.0f} {unit}" if value >= 100 else f"{label} {value:,.2f} {unit}"

    @property
    def spread(self) -> Optional[float]:
        """(max - min) / median, a rough noise indicator."""
        med = self.median
        if not med or len(self.samples) < 2:
            return None
        return (max(self.samples) - min(self.samples)) / med


def compute_ratios(rows: Sequence[Row], baseline: str) -> None:
    """Set ``row.ratio`` = median / baseline median of the same workload and role.

    For throughput this is "fraction of raw TCP speed" (higher is better);
    for memory it is "times raw TCP memory" (lower is better).  Import time
    has no meaningful baseline ratio, nor a pi row's % core (raw's is the
    floor; ``CPU vs raw`` compares them).  ``row.cpu_ratio`` = raw CPU per
    operation / library CPU per operation (higher is better, like speed).
    """
    base: Dict[Tuple[str, str], Row] = {}
    for row in rows:
        if row.lib == baseline:
            base[(row.workload.name, row.role)] = row
    for row in rows:
        ref = base.get((row.workload.name, row.role))
        if ref is None or row.workload.kind in ("import", "idle-cpu"):
            continue
        if ref.median and row.median is not None and row.workload.kind != "paced":
            row.ratio = row.median / ref.median
        if ref.cpu_median and row.cpu_median:
            row.cpu_ratio = ref.cpu_median / row.cpu_median


def target_text(row: Row) -> str:
    """The issue's target for simplews rows, with a pass/fail mark."""
    target = TARGETS.get((row.workload.name, row.role))
    if row.lib != "simplews" or target is None:
        return ""
    op, limit = target
    value = row.ratio
    if row.workload.kind == "import":  # judged on CPU time: robust to machine load
        value = row.cpu_median / 1000.0 if row.cpu_median is not None else row.median
    elif row.workload.kind == "idle-cpu":  # % of one core: raw's figure is ~0, no ratio
        value = row.median
    if value is None:
        return f"{op} {limit:g}"
    ok = {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]
    return "{} {:g} {}".format(op, limit, "PASS" if ok else "FAIL")


def _fmt_value(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "% core":  # idle figures: ~0.003 for a process that does nothing
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _cells(row: Row) -> List[str]:
    note = " ".join("; ".join(row.notes + row.errors[:1]).split())  # one line
    return [
        row.workload.name,
        row.role,
        row.label,
        _fmt_value(row.median, row.workload.unit) if row.samples else ("error" if row.errors else "-"),
        row.workload.unit,
        f"{row.ratio:.2f}" if row.ratio is not None else "",
        f"{100 * row.spread:.0f}%" if row.spread is not None else "",
        f"{row.cpu_median:.2f}" if row.cpu_median is not None else "",
        f"{row.cpu_ratio:.2f}" if row.cpu_ratio is not None else "",
        str(len(row.samples)),
        row.extra_text,
        target_text(row),
        note[:90],
    ]


HEADERS = ["workload", "role", "library", "median", "unit", "vs raw", "spread",
           "CPU us/op", "CPU vs raw", "n", "also", "target", "note"]
RIGHT = {3, 5, 6, 7, 8, 9}


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width table for the terminal."""
    return _text([_cells(r) for r in rows], HEADERS, RIGHT)


def markdown_table(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured Markdown table."""
    return _markdown([_cells(r) for r in rows], HEADERS, RIGHT)


def _text(lines: List[List[str]], headers: List[str], right: Set[int]) -> str:
    table = [headers] + lines
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    out = []
    for n, line in enumerate(table):
        out.append("  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _markdown(lines: List[List[str]], headers: List[str], right: Set[int]) -> str:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    for line in lines:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Compare mode: two simplews versions side by side
# --------------------------------------------------------------------------

COMPARE_HEADERS = ["workload", "role", "unit", "new", "old", "new/old", "CPU us/op new",
                   "CPU us/op old", "CPU new/old", "paired (min-max)", "n", "note"]
COMPARE_RIGHT = {3, 4, 5, 6, 7, 8, 9, 10}


def _ratio(new: Optional[float], old: Optional[float]) -> str:
    return f"{new / old:.3f}" if new is not None and old else ""


def _paired(new: Row, old: Row) -> str:
    """Median and range of the per-round ratios new/old (same round: adjacent in time),
    of CPU us/op, or of the metric for rows without a CPU figure."""
    ratios = sorted(new.by_round[r] / old.by_round[r] for r in new.by_round
                    if r in old.by_round and old.by_round[r])
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.3f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def _compare_cells(new: Row, old: Row) -> List[str]:
    unit = new.workload.unit
    note = " ".join("; ".join(
        new.notes + [f"new: {e}" for e in new.errors[:1]] + [f"old: {e}" for e in old.errors[:1]]).split())
    return [
        new.workload.name, new.role, unit,
        _fmt_value(new.median, unit), _fmt_value(old.median, unit), _ratio(new.median, old.median),
        f"{new.cpu_median:.2f}" if new.cpu_median is not None else "",
        f"{old.cpu_median:.2f}" if old.cpu_median is not None else "",
        _ratio(new.cpu_median, old.cpu_median),
        _paired(new, old),
        f"{len(new.samples)}/{len(old.samples)}",
        note[:90],
    ]


def compare_table(pairs: Sequence[Tuple[Row, Row]], markdown: bool = False) -> str:
    """The (new, old) medians per workload and role, and their ratios."""
    lines = [_compare_cells(new, old) for new, old in pairs]
    return (_markdown if markdown else _text)(lines, COMPARE_HEADERS, COMPARE_RIGHT)
