"""``artshift runs``: DVC experiments joined with their MLflow runs, one row each.

The join key is ``models/run.json``, the file in which the train stage records its MLflow run id.
It is tracked by git (a small ``cache: false`` output, like the metrics), so every DVC experiment
commit (``refs/exps/…``, shared with ``dvc exp push``/``pull``) holds the id of the run that
trained its model. For each row of ``dvc exp show`` the command reads that file at the row's
commit (the workspace row: the file on disk) and fetches the run from the tracking store
(``$MLFLOW_TRACKING_URI``, a team's server or the local SQLite file): method and GAN loss from its
params, FID/KID/content from the metrics evaluate logs, seconds per step from the train stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from artshift.errors import ArtShiftError, one_line

RUN_REF = "models/run.json"
MISSING = "-"
# Column → (metric names tried in order, format). Evaluate adds ``_random_init`` to every score
# computed with random Inception weights (see artshift.evaluation.tracked_metrics).
METRIC_COLUMNS = {
    "fid": (("eval/model/fid", "eval/model/fid_random_init"), "{:.2f}"),
    "kid": (("eval/model/kid_mean", "eval/model/kid_mean_random_init"), "{:.4f}"),
    "content": (("eval/model/content", "eval/model/content_random_init"), "{:.3f}"),
    "s/step": (("train/seconds_per_step",), "{:.3f}"),
}
PARAM_COLUMNS = {"method": "train.method", "gan_loss": "train.gan_loss"}
HEADER = ("experiment", "rev", "mlflow_run_id", *PARAM_COLUMNS, *METRIC_COLUMNS)


@dataclass(frozen=True)
class Experiment:
    """One row of ``dvc exp show``: its name and commit (``workspace`` for the working tree)."""

    name: str
    rev: str


def _dvc_exp_show(repo: Path, all_commits: bool) -> list[dict]:
    """``dvc exp show --json`` of the repository at ``repo``."""
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-pager"]
    if all_commits:
        cmd.append("--all-commits")
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise ArtShiftError(f"dvc exp show failed in {repo}: {lines[-1].removeprefix('ERROR: ')}")
    return json.loads(result.stdout)


def list_experiments(repo: Path, all_commits: bool = False) -> list[Experiment]:
    """The workspace, each baseline commit and every experiment on it, as ``dvc exp show`` lists them."""
    rows = []
    for baseline in _dvc_exp_show(repo, all_commits):
        name = "workspace" if baseline["rev"] == "workspace" else baseline.get("name") or baseline["rev"][:7]
        rows.append(Experiment(name, baseline["rev"]))
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                rows.append(Experiment(rev.get("name") or rev["rev"][:7], rev["rev"]))
    return rows


def run_id_of(repo: Path, experiment: Experiment) -> str | None:
    """The MLflow run id recorded in ``models/run.json`` at the experiment's commit, or None."""
    if experiment.rev == "workspace":
        path = repo / RUN_REF
        text = path.read_text() if path.is_file() else None
    else:
        shown = subprocess.run(["git", "show", f"{experiment.rev}:{RUN_REF}"], cwd=repo, capture_output=True,
                               text=True)
        text = shown.stdout if shown.returncode == 0 else None
    try:
        return json.loads(text)["run_id"] if text else None
    except (ValueError, KeyError, TypeError):
        return None


def run_columns(client, run_id: str) -> tuple[dict[str, str], bool]:
    """The table's params and metrics of one MLflow run, formatted, and whether any score came
    from random-init Inception features; every column ``-`` when the store has no such run."""
    from mlflow.exceptions import MlflowException

    try:
        data = client.get_run(run_id).data
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return {column: MISSING for column in (*PARAM_COLUMNS, *METRIC_COLUMNS)}, False
    columns = {column: data.params.get(name, MISSING) for column, name in PARAM_COLUMNS.items()}
    random_init = False
    for column, (names, fmt) in METRIC_COLUMNS.items():
        found = next((name for name in names if name in data.metrics), None)
        columns[column] = fmt.format(data.metrics[found]) if found else MISSING
        random_init |= bool(found and found.endswith("_random_init"))
    return columns, random_init


def table_rows(repo: Path, tracking_uri: str, all_commits: bool = False) -> tuple[list[tuple[str, ...]], bool]:
    """One row of :data:`HEADER` per experiment, and whether any score is from random-init features."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    rows, any_random = [], False
    for experiment in list_experiments(repo, all_commits):
        run_id = run_id_of(repo, experiment)
        columns, random_init = run_columns(client, run_id) if run_id else ({}, False)
        any_random |= random_init
        rev = experiment.rev if experiment.rev == "workspace" else experiment.rev[:7]
        rows.append((experiment.name, rev, run_id or MISSING,
                     *(columns.get(column, MISSING) for column in (*PARAM_COLUMNS, *METRIC_COLUMNS))))
    return rows, any_random


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Rows under :data:`HEADER` as left-aligned text columns."""
    widths = [max(len(str(row[i])) for row in (HEADER, *rows)) for i in range(len(HEADER))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in (HEADER, *rows))


def runs_command(args: argparse.Namespace) -> None:
    """Print the experiments × runs table of the DVC repository in ``--repo``."""
    from mlflow.exceptions import MlflowException

    repo = Path(args.repo)
    if not (repo / ".dvc").is_dir():
        raise ArtShiftError(f"{repo.resolve()}: not a DVC repository (no .dvc folder)")
    # The store the pipeline logs to (artshift.tracking.tracking_uri), seen from the repository.
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo.resolve() / 'mlflow.db'}"
    try:
        rows, random_init = table_rows(repo, uri, args.all_commits)
    except MlflowException as exc:
        raise RuntimeError(f"tracking store {uri}: {one_line(exc)}") from None
    print(format_table(rows))
    if random_init:
        print("fid, kid, content from random-init Inception features: compare rows, never published numbers")


def add_runs_parser(commands: argparse._SubParsersAction) -> None:
    """Register the ``runs`` subcommand on the ``artshift`` parser."""
    runs = commands.add_parser("runs", help="table of DVC experiments joined with their MLflow runs")
    runs.add_argument("--repo", default=".", help="the DVC repository (default: the current folder)")
    runs.add_argument("-A", "--all-commits", action="store_true",
                      help="experiments of every commit, not only of HEAD (as dvc exp show -A)")
    runs.set_defaults(handler=runs_command)
