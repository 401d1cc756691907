"""Compare mode: ``python -m benchmarks --compare REV``.

Two versions of simplews in one run: the working tree's ("new") and REV's
("old", checked out with ``git worktree add --detach`` into a temporary
directory that is removed at the end).  Every simplews row of the selected
workloads runs for both, alternating round by round (the order rotates), so
drifts of a shared machine hit both alike.  Both sides use the working
tree's harness; each worker imports simplews from its side's directory and
fails if it got another one.  The C accelerator is not tracked by git: the
old side gets the working tree's build when ``_speedups.c`` is the same in
both, is built in place when it differs, and goes without when the working
tree has none.  The header says what each side had.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

from benchmarks.report import Row, compare_table
from benchmarks.run import ROOT, header_lines, kill_all, log, prepare_tls, run_all, worker_env, write_json

NEW = "simplews"


@dataclasses.dataclass
class Side:
    """One version of simplews: its table label, directory and accelerator status."""

    label: str
    directory: str
    origin: str
    speedups: str = ""


def _git(*args: str) -> str:
    """Run git in the project root; return its stdout (CalledProcessError on failure)."""
    proc = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True, timeout=120)
    return proc.stdout.strip()


def _speedups_so(directory: str) -> List[str]:
    return glob.glob(os.path.join(directory, "simplews", "_speedups*.so"))


def provide_speedups(old: str) -> str:
    """Give the old checkout an accelerator like the working tree's; say how."""
    built = _speedups_so(ROOT)
    source_new = os.path.join(ROOT, "simplews", "_speedups.c")
    source_old = os.path.join(old, "simplews", "_speedups.c")
    if not built:
        return "none given (the working tree has no built accelerator)"
    if not os.path.exists(source_old):
        return "none (this revision has no _speedups.c)"
    if os.path.exists(source_new) and filecmp.cmp(source_new, source_old, shallow=False):
        for path in built:
            shutil.copy2(path, os.path.join(old, "simplews"))
        return "copied from the working tree (same _speedups.c)"
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=old,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not _speedups_so(old):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return f"build failed ({tail[0][:120]})"
    return "built in place (_speedups.c differs)"


def probe_side(side: Side) -> None:
    """Check in a child process that simplews imports from the side's directory
    only; record whether its C accelerator loads."""
    code = (
        "import sys; from benchmarks.pinned import check, pin; pin(sys.argv[1]); import simplews\n"
        "try:\n    import simplews._speedups\n    print('yes')\n"
        "except ImportError:\n    print('no')\n"
        "check(sys.argv[1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, side.directory], capture_output=True, text=True,
                          env=worker_env(), cwd=ROOT, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{side.label}: simplews does not import: {proc.stderr.strip()[-300:]}")
    loads = proc.stdout.split()[-1] == "yes"
    side.speedups = f"C accelerator {'loads' if loads else 'absent'}" + (
        f": {side.speedups}" if side.speedups else "")
    if os.environ.get("SIMPLEWS_NO_SPEEDUPS"):
        side.speedups += " (SIMPLEWS_NO_SPEEDUPS is set)"


def pair_rows(rows: Sequence[Row], old_label: str) -> List[Tuple[Row, Row]]:
    """(new, old) rows of the same workload and role, in table order."""
    old: Dict[Tuple[str, str], Row] = {(r.workload.name, r.role): r for r in rows if r.lib == old_label}
    return [(r, old[(r.workload.name, r.role)]) for r in rows
            if r.lib == NEW and (r.workload.name, r.role) in old]


def run_compare(opts: argparse.Namespace) -> int:
    """Measure the working tree's simplews against REV's; print the comparison."""
    rev = opts.compare
    try:
        commit = _git("rev-parse", "--verify", rev + "^{commit}")
    except subprocess.CalledProcessError as exc:
        log(f"--compare: not a revision: {rev} ({exc.stderr.strip()})")
        return 2
    old_label = f"{NEW}@{rev}"
    with tempfile.TemporaryDirectory(prefix="simplews-compare-") as scratch:
        checkout = os.path.join(scratch, "old")
        _git("worktree", "add", "--detach", checkout, commit)
        try:
            sides = [Side(NEW, ROOT, "working tree " + ROOT),
                     Side(old_label, checkout, f"{rev} = {commit[:12]}, temporary worktree",
                          provide_speedups(checkout))]
            for side in sides:
                probe_side(side)
            opts.sides = {side.label: side.directory for side in sides}
            prepare_tls(opts, scratch)
            head = header_lines(opts, [], {}) + [
                f"compare: {side.label}: {side.origin}; {side.speedups}" for side in sides
            ] + ["harness: the working tree's benchmarks/ on both sides; ratios are new / old "
                 "(throughput: > 1 is faster; CPU us/op and % core: < 1 is cheaper)"]
            log("\n".join(head))
            try:
                rows = run_all(opts, [side.label for side in sides])
            finally:
                kill_all()
        finally:
            _remove_worktree(checkout)
    pairs = pair_rows(rows, old_label)
    print("\n".join(head))
    print()
    print(compare_table(pairs))
    if opts.markdown:
        with open(opts.markdown, "w") as out:
            out.write("# Benchmark comparison\n\n" + "".join(f"- {line}\n" for line in head))
            out.write("\n" + compare_table(pairs, markdown=True) + "\n")
    if opts.json:
        write_json(opts.json, rows)
    return 1 if any(r.errors for r in rows) else 0


def _remove_worktree(path: str) -> None:
    """Remove the temporary worktree and its registration (best effort, logged)."""
    try:
        _git("worktree", "remove", "--force", path)
    except subprocess.CalledProcessError as exc:
        log(f"git worktree remove failed ({exc.stderr.strip()}); pruning")
        shutil.rmtree(path, ignore_errors=True)
        try:
            _git("worktree", "prune")
        except subprocess.CalledProcessError:
            pass

