"""The one place that talks to MLflow.

One MLflow run per trained model: the train stage opens it and records its id in
``models/run.json``; evaluate and export log into that same run. Download and preprocess
log data-set facts to short runs of their own in the ``artshift-data`` experiment.
Every stage holds its run the same way, as a context manager (``with ... as run:``) that
ends the run FINISHED, or FAILED when the stage raises.
Tracking store: ``$MLFLOW_TRACKING_URI`` or ``mlflow.db`` in the project folder, which is
``$DVC_ROOT`` when DVC runs a stage (the main project, also for ``--temp`` and queued
experiments), else the working directory; artifacts go to ``mlartifacts/`` beside it, and follow
the store when the project folder is copied or moved. The model registry is
:mod:`artshift.registry`.

Store trouble (locked for more than SQLite's 5 s, damaged, unreachable) is raised as one
:class:`TrackingError` line naming the store. Every stage touches the store when it starts, and
logs everything before it swaps its outputs in, so such an error leaves the previous outputs;
only marking the run FINISHED comes after, and its failure is a warning. A tracking server
(``http(s)://``) is first asked for its ``/health`` with a short timeout and no retries (MLflow's
own client retries a dead server for minutes): one that does not answer fails the stage at once,
or, with ``tracking.required: false``, the stage logs to the local store and says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import httpx  # noqa: E402
from mlflow.entities import Experiment, Metric, Param, RunTag  # noqa: E402  (telemetry is off before the import)
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from artshift.errors import ArtShiftError, TrackingError, one_line  # noqa: E402
from artshift.files import write_json  # noqa: E402
from artshift.log import get_logger  # noqa: E402

MODEL_EXPERIMENT = "artshift"
DATA_EXPERIMENT = "artshift-data"
# The experiment type MLflow 3's UI reads: open on the model-training view, not the GenAI one.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
ARTIFACTS_DIR = "mlartifacts"
# Every column of the SQLite store that holds an artifact location, rewritten when the store moves.
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                     ("model_versions", "source"))
# Files the pipeline rewrites itself, and params.yaml (logged as the run's params): not code changes.
_NOT_CODE = (":!dvc.lock", ":!metrics", ":!reports", ":!models/run.json", ":!params.yaml")
STORE_HINTS = {  # what to do about the SQLite errors a store can raise
    "database is locked": "another process held it for more than 5 s; run again when that one is done",
    "malformed": "the file is damaged; restore it from a backup, or move it aside to start a new store",
    "not a database": "the file is damaged; restore it from a backup, or move it aside to start a new store",
}
# Seconds a tracking server has to answer /health when a stage starts; it counts as down after them.
PROBE_TIMEOUT_S = 5.0
log = get_logger("tracking")
# MLflow logs a store's database errors with their traceback before raising them; they are
# reported once, as one line naming the store (store_errors), instead.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def project_root() -> Path:
    """The project folder: ``$DVC_ROOT`` (set by DVC for every stage, the main project's folder
    even when a ``--temp`` or queued experiment runs in a copy), else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def local_store_uri() -> str:
    """The project's own SQLite store: ``mlflow.db`` in the project folder."""
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    """The tracking store: ``$MLFLOW_TRACKING_URI`` or the project's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def server_problem(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the tracking server at ``uri`` cannot be used now, or None when it answers.

    One ``GET /health``, no retries, ``timeout`` seconds: no connection, a timeout or a 5xx (a proxy
    in front of a stopped server) count as down; any other answer (a 401 from an authenticating
    proxy included) leaves the rest to MLflow's own client. TLS follows MLflow's variables.
    """
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true")
    verify = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    try:
        answer = httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout, verify=verify)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        return re.sub(r"^\[Errno -?\d+\] ", "", one_line(exc)).lower()
    return f"/health answered HTTP {answer.status_code}" if answer.status_code >= 500 else None


def check_store(required: bool = True) -> None:
    """Make sure a tracking server answers before a stage does any work.

    A server that is down or unreachable is one :class:`TrackingError` line naming it, or, when not
    ``required`` (``tracking.required: false``), one warning, and this process logs to the local
    store from then on (``$MLFLOW_TRACKING_URI`` is pointed at it, for MLflow's own calls too).
    Other stores (the local SQLite file, a database URI) are left to the first call.
    """
    uri = tracking_uri()
    problem = server_problem(uri) if uri.startswith(("http://", "https://")) else None
    if problem is None:
        return
    if required:
        raise TrackingError(f"tracking server {uri}: {problem} (start it, fix MLFLOW_TRACKING_URI, or set "
                            "tracking.required: false to log to the local store)")
    os.environ["MLFLOW_TRACKING_URI"] = local_store_uri()
    log.warning("tracking server %s: %s; tracking.required is false, so this stage logs to the local store %s",
                uri, problem, tracking_uri())


def _sqlite_file() -> Path | None:
    """The database file of a SQLite tracking store (None for a server or another database)."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _artifact_root(database: Path) -> str:
    """Where the artifacts of a SQLite store live: ``mlartifacts/`` beside its file, as a URI."""
    return (database.parent / ARTIFACTS_DIR).as_uri()


def _relocate(database: Path, old: str, new: str) -> None:
    """Rewrite every artifact location under ``old`` to the same place under ``new``.

    MLflow stores absolute locations; after the project folder (store and ``mlartifacts/``
    together) was copied or moved, they still name the original folder, so new runs would write
    there. MLflow has no API to change an experiment's location, hence the SQL.
    """
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        for table, column in _LOCATION_COLUMNS:
            connection.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 (fixed names)
                               f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                               (new, len(old) + 1, old, len(old) + 1, f"{old}/"))


def _follow_store(experiment: Experiment) -> None:
    """Point an experiment of a SQLite store at the ``mlartifacts/`` beside the store's file when
    it names one elsewhere (the project was copied or moved); other locations are left alone."""
    database = _sqlite_file()
    root = _artifact_root(database) if database else None
    location = experiment.artifact_location
    if root and location != root and location.rstrip("/").endswith(f"/{ARTIFACTS_DIR}"):
        _relocate(database, location.rstrip("/"), root)


def store_failure(exc: BaseException) -> TrackingError:
    """One line for a failure of the tracking store: the store, the database's first line, a hint."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = re.sub(r"^\([\w.]+\) ", "", first)  # "(sqlite3.OperationalError) database is locked"
    hint = next((text for key, text in STORE_HINTS.items() if key in reason), "")
    return TrackingError(f"tracking store {tracking_uri()}: {reason}" + (f" ({hint})" if hint else ""))


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn the store's errors (SQLAlchemy's multi-line ones included) into one :class:`TrackingError`."""
    try:
        yield
    except (MlflowException, SQLAlchemyError, sqlite3.Error) as exc:
        raise store_failure(exc) from None


class _Client:
    """An :class:`MlflowClient` on the tracking store whose every call raises store trouble as
    one :class:`TrackingError` line (see :func:`store_errors`)."""

    def __init__(self):
        with store_errors():
            self._client = MlflowClient(tracking_uri())

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            with store_errors():
                return method(*args, **kwargs)

        return call


def _experiment_id(name: str) -> str:
    """Id of experiment ``name``: created if new (a model-training experiment, artifacts in
    ``mlartifacts/`` beside a SQLite store), else tagged and relocated as needed."""
    client = _Client()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        database = _sqlite_file()
        return client.create_experiment(name, artifact_location=_artifact_root(database) if database else None,
                                        tags=EXPERIMENT_TAGS)
    for key, value in EXPERIMENT_TAGS.items():
        if experiment.tags.get(key) != value:  # an experiment made before ArtShift set the type
            client.set_experiment_tag(experiment.experiment_id, key, value)
    with store_errors():
        _follow_store(experiment)
    return experiment.experiment_id


def git_commit() -> str:
    """The current git commit (with ``-dirty`` if code differs from it), or ``unknown``.

    ``params.yaml`` does not count: every param is logged with the run, and a DVC experiment
    (``-S key=value``) always changes it.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_NOT_CODE],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def dvc_experiment() -> dict[str, str]:
    """The DVC experiment this stage runs in, from the variables DVC sets (``dvc exp run``,
    also ``--temp`` and queued): its name and the commit it was started from. Empty otherwise."""
    found = {"dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
             "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "")}
    return {key: value for key, value in found.items() if value}


def source_tags() -> dict[str, str]:
    """Tags saying which code and which DVC experiment produced a run."""
    commit = git_commit()
    return {"mlflow.source.git.commit": commit, "git_commit": commit, **dvc_experiment()}


def flatten(params: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``, the keys MLflow and DVC both use."""
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Run:
    """A handle on one MLflow run: log params, metrics, images and files into it.

    Used as a context manager by every stage: leaving the ``with`` block ends the run,
    ``FAILED`` if the block raised (Ctrl-C included), else ``FINISHED``. Ending the run comes
    after the stage's outputs are in place, so a store failure then is a warning, never the
    stage's failure (nor does it hide the error that ended the block).
    """

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.client = _Client()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        try:
            self.client.set_terminated(self.run_id, status)
        except TrackingError as exc:
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, exc)

    def log_params(self, params: Mapping) -> None:
        """Log (nested) params under their dotted names.

        MLflow params are write-once; when a later stage re-runs with a changed value, the new
        value is kept as a ``param_changed.<key>`` tag instead of failing the stage.
        """
        logged = self.client.get_run(self.run_id).data.params
        new = {k: str(v) for k, v in flatten(params).items() if k not in logged}
        changed = {f"param_changed.{k}": str(v) for k, v in flatten(params).items()
                   if k in logged and logged[k] != str(v)}
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in new.items()],
                              tags=[RunTag(k, v) for k, v in changed.items()])

    def log_summary(self, summary: Mapping, prefix: str = "") -> None:
        """Log a stage's summary dict: numbers become metrics, everything else tags."""
        flat = flatten(summary, prefix)
        numbers = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.log_metrics(numbers)
        self.set_tags({k: v for k, v in flat.items() if k not in numbers})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log a dict of scalar metrics at ``step``."""
        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set string tags on the run."""
        self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copy a file into the run's artifacts (under ``folder``)."""
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_image(self, image: Image.Image, key: str, step: int) -> None:
        """Log a PIL image as step ``step`` of the image series ``key``: the UI shows it with a
        step slider and beside the same key of other runs."""
        self.client.log_image(self.run_id, image, key=key, step=step)


def start_model_run(params: Mapping, run_name: str | None = None, tags: Mapping[str, str] | None = None,
                    required: bool = True) -> Run:
    """A new run for the model being trained: params logged, tagged with its code and DVC
    experiment (use it as ``with start_model_run(...) as run``); named after the DVC experiment
    when there is one, else ``run_name``. ``required``: see :func:`check_store`."""
    check_store(required)
    client = _Client()
    all_tags = {**source_tags(), **(tags or {})}
    name = dvc_experiment().get("dvc.exp_name") or run_name
    run = client.create_run(_experiment_id(MODEL_EXPERIMENT), run_name=name, tags=all_tags)
    handle = Run(run.info.run_id)
    handle.log_params(params)
    return handle


def save_run_ref(run: Run, path: str | Path) -> None:
    """Record the run id so later stages log into the same run."""
    write_json(path, {"run_id": run.run_id})


def open_run(ref_path: str | Path, required: bool = True) -> Run:
    """The model run recorded in ``ref_path`` (``models/run.json``) by the train stage, to log
    into again (use it as ``with open_run(...) as run``). ``required``: see :func:`check_store`."""
    try:
        ref = json.loads(Path(ref_path).read_text())
        run_id = ref["run_id"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtShiftError(f"{ref_path}: no usable run id ({exc}); run the train stage first") from None
    check_store(required)
    run = Run(run_id)
    run.client.get_run(run_id)  # the store answers and holds the run, before the stage does any work
    return run


def data_run(stage: str, required: bool = True) -> Run:
    """A new short run in the data experiment for ``stage`` (use it as ``with data_run(...) as run``).
    ``required``: see :func:`check_store`."""
    check_store(required)
    client = _Client()
    run = client.create_run(_experiment_id(DATA_EXPERIMENT), run_name=stage, tags={"stage": stage, **source_tags()})
    return Run(run.info.run_id)
