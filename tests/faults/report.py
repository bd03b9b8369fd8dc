"""Print the ``make faults`` table from the JSON the fault tests wrote (tests/faults/conftest.py).

Usage: ``python tests/faults/report.py test-artifacts/faults.json``. Exits 1 when any trial lost
data or did not recover, so ``make faults`` fails with the table still printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(cases: list[dict]) -> str:
    """The cases as a markdown table: case, trials, survived, data lost (and time taken)."""
    lines = ["| case | trials | survived | data lost | s |", "|---|---:|---:|---:|---:|"]
    for row in sorted(cases, key=lambda row: row["case"]):
        trials = f"{row['trials']}" + (f" (+{row['skipped']} skipped)" if row["skipped"] else "")
        lines.append(f"| {row['case']} | {trials} | {row['survived']} | {row['lost']} | {row['seconds']:.1f} |")
    total = {key: sum(row[key] for row in cases) for key in ("trials", "survived", "lost", "seconds")}
    lines.append(f"| **all {len(cases)} cases** | {total['trials']} | {total['survived']} | {total['lost']} | "
                 f"{total['seconds']:.0f} |")
    return "\n".join(lines)


def main(path: str) -> int:
    """Print the table of ``path``; 1 when a trial lost data or did not survive."""
    cases = json.loads(Path(path).read_text())["cases"]
    print(table(cases))
    return int(any(row["lost"] or row["survived"] < row["trials"] for row in cases))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
