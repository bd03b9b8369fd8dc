"""A team's setup against real servers on loopback: the MLflow server on PostgreSQL with proxied
artifacts (started by ``python -m artshift.tracking_server``, as ``make tracking-server`` does), a
DVC remote over SSH (Debian's OpenSSH ``sshd`` with throwaway keys), and ``artshift runs``.

One tiny pipeline (``dvc repro`` in a temporary copy of the repository, as in test_pipeline.py)
logs to the server and pushes to the remote; a second clone pulls it. Without PostgreSQL or sshd
the tests that need them skip, unless ``ARTSHIFT_REQUIRE_SERVERS=1`` (set by CI), where a missing
server is a failure.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

from test_pipeline import TINY, _merge

REPO = Path(__file__).resolve().parents[1]
SSHD = Path("/usr/sbin/sshd")
TEAM_PARAMS = TINY
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}


def _unavailable(reason: str) -> None:
    """Skip, or fail when CI requires the servers."""
    if os.environ.get("ARTSHIFT_REQUIRE_SERVERS") == "1":
        pytest.fail(f"ARTSHIFT_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _run(args: list[str], cwd: Path | None = None, env: dict | None = None, ok: bool = True,
         timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command; with ``ok`` assert it succeeded, showing the end of its output if not."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _base_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment for child processes, quiet and offline."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ARTSHIFT_NO_PROGRESS": "1", "ARTSHIFT_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           **GIT_IDENTITY, **extra}
    env.pop("ARTSHIFT_DEBUG", None)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- servers (one of each per session)

@dataclass(frozen=True)
class TrackingServer:
    folder: Path
    uri: str


def _server_cli(action: str, folder: Path) -> subprocess.CompletedProcess:
    """``python -m artshift.tracking_server <action> --dir <folder>``: what ``make tracking-*`` runs."""
    return subprocess.run([sys.executable, "-m", "artshift.tracking_server", action, "--dir", str(folder)],
                          env=_base_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def tracking_server():
    """PostgreSQL + ``mlflow server`` with proxied artifacts in a temporary folder."""
    try:
        import psycopg2  # noqa: F401

        from artshift.tracking_server import postgres_binary

        postgres_binary("initdb")
        postgres_binary("pg_ctl")
    except Exception as exc:  # noqa: BLE001 - any missing piece means no server here
        _unavailable(f"no PostgreSQL server here ({exc})")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root without the 'postgres' system user to run PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="artshift-team-"))
    folder.chmod(0o755)  # as root, PostgreSQL runs as the postgres user, who must reach its data folder
    started = _server_cli("start", folder)
    assert started.returncode == 0, started.stderr
    uri = started.stdout.strip().splitlines()[-1].removeprefix("export MLFLOW_TRACKING_URI=")
    yield TrackingServer(folder, uri)
    stopped = _server_cli("stop", folder)
    shutil.rmtree(folder, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr


@dataclass(frozen=True)
class SSHRemote:
    url: str  # the DVC remote: ssh://user@127.0.0.1:port/folder
    keyfile: Path  # the client's private key
    home: Path  # a HOME whose ~/.ssh/known_hosts trusts the server's throwaway host key


def _sshd_config(folder: Path, port: int) -> Path:
    """An sshd configuration for one user, public keys only, SFTP in-process, on loopback."""
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PidFile {folder / 'sshd.pid'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
""")
    return config


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 30) -> None:
    """Wait until sshd answers with its SSH banner."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"sshd exited: {log.read_text()[-2000:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"sshd did not answer on port {port}: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def ssh_remote():
    """A non-daemon ``sshd -D`` on a spare loopback port, with a throwaway host key and client key."""
    if not SSHD.is_file() or shutil.which("ssh-keygen") is None:
        _unavailable(f"no OpenSSH server at {SSHD} (apt-get install openssh-server)")
    if os.geteuid() != 0:
        _unavailable("sshd serves other logins only as root")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    folder = Path(tempfile.mkdtemp(prefix="artshift-ssh-"))
    for key in ("host_key", "client_key"):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key, "-f", str(folder / key)])
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = _free_port()
    home = folder / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    host_key = " ".join((folder / "host_key.pub").read_text().split()[:2])
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    log = folder / "sshd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-p", str(port), "-f", str(_sshd_config(folder, port))],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_banner(port, process, log)
        user = pwd.getpwuid(os.geteuid()).pw_name
        yield SSHRemote(f"ssh://{user}@127.0.0.1:{port}{folder / 'store'}", folder / "client_key", home)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- Alice runs the pipeline, Bob clones

@dataclass(frozen=True)
class Team:
    alice: Path  # the project that trained, pushed to git (origin) and to the DVC remote
    bob: Path  # a fresh clone of origin that pulled the data and models
    origin: Path
    env: dict
    push_s: float
    pull_s: float


def _copy_repo(target: Path) -> None:
    """Tracked and new files of this checkout, without dvc.lock (every stage must run)."""
    listed = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file() and name not in ("dvc.lock", "models/run.json"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    params = yaml.safe_load((target / "params.yaml").read_text())
    (target / "params.yaml").write_text(yaml.safe_dump(_merge(params, TEAM_PARAMS), sort_keys=False))


@pytest.fixture(scope="module")
def team(tmp_path_factory, tracking_server, ssh_remote):
    """Alice: `dvc repro` logging to the server, commit, `git push`, `dvc push`. Bob: clone, `dvc pull`."""
    root = tmp_path_factory.mktemp("team")
    alice, bob, origin = root / "alice", root / "bob", root / "origin.git"
    alice.mkdir()
    _copy_repo(alice)
    env = _base_env(MLFLOW_TRACKING_URI=tracking_server.uri, HOME=str(ssh_remote.home))
    _run(["git", "init", "-q", "-b", "main"], alice, env)
    _run(["dvc", "remote", "add", "-d", "team", ssh_remote.url], alice, env)
    _run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(ssh_remote.keyfile)], alice, env)
    _run(["git", "add", "-A"], alice, env)
    _run(["git", "commit", "-qm", "tiny team project"], alice, env)
    _run(["dvc", "repro"], alice, env)
    _run(["git", "add", "-A"], alice, env)
    _run(["git", "commit", "-qm", "tiny run"], alice, env)
    _run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root, env)
    _run(["git", "remote", "add", "origin", str(origin)], alice, env)
    _run(["git", "push", "-q", "origin", "main"], alice, env)
    start = time.perf_counter()
    _run(["dvc", "push"], alice, env)
    push_s = time.perf_counter() - start
    _run(["git", "clone", "-q", str(origin), str(bob)], root, env)
    _run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(ssh_remote.keyfile)], bob, env)
    start = time.perf_counter()
    _run(["dvc", "pull"], bob, env)
    pull_s = time.perf_counter() - start
    print(f"\nDVC remote over SSH: push {push_s:.1f} s, pull {pull_s:.1f} s", file=sys.stderr)
    return Team(alice, bob, origin, env, push_s, pull_s)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_second_start_says_the_server_runs(tracking_server):
    again = _server_cli("start", tracking_server.folder)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert again.stdout.strip() == f"export MLFLOW_TRACKING_URI={tracking_server.uri}"
    status = _server_cli("status", tracking_server.folder)
    assert status.returncode == 0 and "running at" in status.stdout


def test_pipeline_logs_run_metrics_artifacts_and_model_to_the_server(team, tracking_server):
    client = _client(tracking_server.uri)
    run_id = json.loads((team.alice / "models/run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied: clients hold no storage URL
    assert run.data.params["train.method"] == "cut" and run.data.params["train.steps"] == "4"
    for metric in ("loss/d_total", "train/seconds_per_step", "eval/model/fid_random_init", "export/fp32/max_abs_diff"):
        assert metric in run.data.metrics, metric
    assert [m.step for m in client.get_metric_history(run_id, "loss/d_total")] == [2, 4]
    artifacts = {a.path for folder in ("eval", "onnx", "images") for a in client.list_artifacts(run_id, folder)}
    assert {"eval/eval.json", "onnx/generator.onnx"} <= artifacts
    for key in ("samples", "eval_grid"):  # log_image series: images/<key>+step+...png
        assert any(path.startswith(f"images/{key}") and path.endswith(".png") for path in artifacts), (key, artifacts)
    stored = {p.name for p in (tracking_server.folder / "artifacts").rglob("*") if p.is_file()}
    assert {"eval.json", "generator.onnx", "model.onnx"} <= stored  # on the server's side
    assert not (team.alice / "mlflow.db").exists() and not (team.alice / "mlartifacts").exists()
    versions = client.search_model_versions("name='artshift'")
    assert versions and {v.run_id for v in versions} == {run_id}
    data_runs = client.search_runs([client.get_experiment_by_name("artshift-data").experiment_id])
    assert {r.data.tags["stage"] for r in data_runs} == {"download", "preprocess"}


def test_registered_model_stylizes_through_the_server(team, tracking_server, tmp_path):
    photos = sorted((team.alice / "data/raw/photos").iterdir())[:2]
    out = tmp_path / "out"
    result = _run([sys.executable, "-m", "artshift.cli", "stylize", *map(str, photos), "--out", str(out),
                   "--model", "models:/artshift/latest"], cwd=tmp_path, env=team.env)
    assert re.search(r"running models:/artshift/latest \(version 1, run \w+\) on CPUExecutionProvider", result.stderr)
    for photo in photos:
        assert Image.open(out / photo.name).size == Image.open(photo).size
    assert not (tmp_path / "mlflow.db").exists()


def test_fresh_clone_pulls_the_models_and_has_nothing_to_do(team):
    for name in ("generator.onnx", "generator.int8.onnx", "generator.pt"):
        assert (team.bob / "models" / name).read_bytes() == (team.alice / "models" / name).read_bytes(), name
    assert not (team.bob / "models/checkpoints").exists()  # never trained here
    status = _run(["dvc", "status"], team.bob, team.env)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    dry = _run(["dvc", "repro", "--dry"], team.bob, team.env)
    assert "Running stage" not in dry.stdout, dry.stdout
    assert team.push_s < 120 and team.pull_s < 120


def test_experiment_travels_through_git_and_dvc_remotes_and_joins_its_run(team, tracking_server):
    name = "calib3"
    ran = _run(["dvc", "exp", "run", "-n", name, "-S", "export.calibration_images=3"], team.alice, team.env)
    assert "Running stage 'export'" in ran.stdout and "Running stage 'train'" not in ran.stdout
    _run(["dvc", "exp", "push", "origin", name], team.alice, team.env)
    _run(["dvc", "exp", "pull", "origin", name], team.bob, team.env)
    _run(["dvc", "exp", "apply", name], team.bob, team.env)
    int8 = "models/generator.int8.onnx"
    assert (team.bob / int8).read_bytes() == (team.alice / int8).read_bytes()
    runs = _run([sys.executable, "-m", "artshift.cli", "runs"], team.bob, team.env).stdout.splitlines()
    run_id = json.loads((team.alice / "models/run.json").read_text())["run_id"]
    row = next(line.split() for line in runs if line.startswith(name))
    fid = _client(tracking_server.uri).get_run(run_id).data.metrics["eval/model/fid_random_init"]
    assert row[2:5] == [run_id, "cut", "lsgan"] and row[5] == f"{fid:.2f}"
    assert all(cell != "-" for cell in row), row


# ---------------------------------------------------------------- `artshift runs` on a local store

STAGE = """\
import yaml
from artshift import tracking

params = yaml.safe_load(open("params.yaml"))
score = params["score"]
with tracking.start_model_run(params) as run:
    tracking.save_run_ref(run, "models/run.json")
    run.log_metrics({"train/seconds_per_step": 0.5 * score, "eval/model/fid_random_init": 10.0 * score,
                     "eval/model/kid_mean_random_init": 0.01 * score, "eval/model/content_random_init": 0.1 * score})
"""
DVC_YAML = """\
stages:
  train:
    cmd: python stage.py
    deps: [stage.py]
    params: [train, score]
    outs:
      - models/run.json:
          cache: false
"""


def test_runs_joins_each_experiment_with_its_mlflow_run(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _base_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'store.db'}")
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("train:\n  method: cut\n  gan_loss: lsgan\nscore: 1\n")
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    _run(["dvc", "repro"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "first run"], repo, env)
    _run(["dvc", "exp", "run", "-n", "fastcut-hinge", "-S", "train.method=fastcut", "-S", "train.gan_loss=hinge",
          "-S", "score=2"], repo, env)
    result = _run([sys.executable, "-m", "artshift.cli", "runs", "--repo", str(repo)], tmp_path, env)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["experiment", "rev", "mlflow_run_id", "method", "gan_loss", "fid", "kid", "content",
                                "s/step"]
    rows = {line.split()[0]: line.split()[2:] for line in lines[1:-1]}
    first = _run(["git", "show", "HEAD:models/run.json"], repo, env).stdout
    second = json.loads((repo / "models/run.json").read_text())["run_id"]
    assert rows["main"] == [json.loads(first)["run_id"], "cut", "lsgan", "10.00", "0.0100", "0.100", "0.500"]
    assert rows["fastcut-hinge"] == [second, "fastcut", "hinge", "20.00", "0.0200", "0.200", "1.000"]
    assert rows["workspace"] == rows["fastcut-hinge"]
    assert "random-init" in lines[-1]


def test_runs_outside_a_dvc_repository_is_a_one_line_error(tmp_path):
    result = _run([sys.executable, "-m", "artshift.cli", "runs", "--repo", str(tmp_path)], env=_base_env(), ok=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not a DVC repository" in result.stderr


def test_stopping_a_tracking_server_that_never_ran_says_so(tmp_path):
    result = _server_cli("stop", tmp_path / "nothing")
    assert result.returncode == 0, result.stderr
    assert "mlflow server was not running" in result.stderr and "PostgreSQL was not running" in result.stderr
    status = _server_cli("status", tmp_path / "nothing")
    assert status.returncode == 1 and "stopped" in status.stdout
