"""What an operator looks at after a compaction run: summary lines and a file-size histogram.

The Spark job writes the run's JSON report; the DAG's report task (and ``kafkalake compact``)
turn it into log lines and a PNG next to it: file sizes before vs after, log-scale bins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def summary_lines(run: dict[str, Any]) -> list[str]:
    """One block per table: files, bytes, rows, mean file size before -> after, duration."""
    lines = []
    for table in run.get("tables", []):
        name = f"{table['table']} ({table['format']})"
        totals = table.get("totals")
        if table.get("dry_run") or not totals or not totals["hours_compacted"]:
            planned = [h for h in table.get("plan", []) if h["action"] == "compact"]
            verb = "would compact" if table.get("dry_run") and planned else "nothing to compact in"
            lines.append(f"{name}: {verb} {len(planned) or ''} hour(s); "
                         f"{sum(1 for h in table.get('plan', []) if h['action'] == 'skip')} skipped".replace("  ", " "))
            lines += [f"  recovered: {note}" for note in table.get("recovered", [])]
            continue
        lines.append(
            f"{name}: {totals['hours_compacted']} hour(s) compacted, {totals['hours_skipped']} skipped; "
            f"files {totals['files_before']:,} -> {totals['files_after']:,}; "
            f"bytes {_size(totals['bytes_before'])} -> {_size(totals['bytes_after'])}; "
            f"rows {totals['rows']:,}; mean file {_size(totals['mean_file_bytes_before'])} -> "
            f"{_size(totals['mean_file_bytes_after'])}; {table.get('seconds', 0):.1f} s"
        )
        for note in table.get("recovered", []):
            lines.append(f"  recovered: {note}")
        if table.get("orphan_files_removed"):
            lines.append(f"  removed {table['orphan_files_removed']} orphan file(s) (of killed writes)")
        elif table.get("orphan_sweep_due_at") and not table.get("dry_run"):
            lines.append(f"  orphan files: next sweep at {table['orphan_sweep_due_at']}")
    lines.append(f"run took {run.get('seconds', 0):.1f} s")
    return lines


def render_png(run: dict[str, Any], png: Path) -> Path:
    """Histogram of file sizes before vs after (all tables of the run), log-scale x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    before = [s for t in run.get("tables", []) for h in t.get("hours", []) for s in h["source_sizes"]]
    after = [s for t in run.get("tables", []) for h in t.get("hours", []) for s in h["output_sizes"]]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    sizes = [s for s in before + after if s > 0]
    if sizes:
        bins = np.logspace(np.log10(min(sizes)), np.log10(max(sizes)) + 0.01, 30)
        ax.hist(before, bins=bins, alpha=0.6, label=f"before: {len(before):,} files")
        ax.hist(after, bins=bins, alpha=0.8, label=f"after: {len(after):,} files")
        ax.set_xscale("log")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "nothing compacted in this run", ha="center", va="center", transform=ax.transAxes)
    tables = ", ".join(f"{t['table']} ({t['format']})" for t in run.get("tables", [])) or "no tables"
    ax.set_title(f"compaction: file sizes — {tables}")
    ax.set_xlabel("file size (bytes)")
    ax.set_ylabel("files")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        from kafkalake.errors import KafkalakeError

        raise KafkalakeError(f"no compaction report at {path}: did the compact job run? (see its log)") from None
