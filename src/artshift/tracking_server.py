"""A team's tracking server on this machine: PostgreSQL + ``mlflow server`` with proxied artifacts.

``python -m artshift.tracking_server start|stop|status [--dir .team]`` (``make tracking-server``,
``make tracking-stop``). ``start`` creates, on first use, a PostgreSQL cluster under
``<dir>/postgres`` listening on 127.0.0.1 only (a spare TCP port, no Unix socket, password
authentication), starts it and ``mlflow server`` on another spare port with
``--backend-store-uri postgresql+psycopg2://…`` and ``--artifacts-destination <dir>/artifacts``, so clients
send and fetch artifacts through the server and need no storage credentials. It waits until both
answer, then prints ``export MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`` on stdout (everything
else goes to stderr, so ``eval "$(python -m artshift.tracking_server start)"`` works). The ports
are kept in ``<dir>/ports.json``, so a restart serves the same URI; a second ``start`` says the
server is running. The password lives only in ``<dir>/pgpass`` (mode 0600, read by libpq through
``PGPASSFILE``), never on a command line.

PostgreSQL refuses to run as root: as root, the cluster is owned by and run as the ``postgres``
system user (Debian's ``postgresql`` package creates it), which must be able to reach ``<dir>``.
Exit codes: 0 ok, 2 bad usage or missing PostgreSQL, 1 a server that fails to start or stop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from artshift.errors import ArtShiftError, run_main

DB_USER, DB_NAME = "artshift", "mlflow"
HOST = "127.0.0.1"
POSTGRES_SYSTEM_USER = "postgres"
START_TIMEOUT_S = 240.0  # the first start creates MLflow's tables in PostgreSQL


class ServerError(RuntimeError):
    """A server did not start or stop; the message says which and why (exit code 1)."""


@dataclass(frozen=True)
class Layout:
    """Where one tracking setup keeps its files, all under ``root``."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"

    @property
    def mlflow_pid(self) -> Path:
        return self.root / "mlflow.pid"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"


def postgres_binary(name: str) -> str:
    """Path of PostgreSQL's ``name`` program (``initdb``, ``pg_ctl``): on PATH, else the newest
    Debian install under ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found:
        return found
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not installed:
        raise ArtShiftError(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return str(installed[-1])


def _as_postgres(cmd: list[str]) -> list[str]:
    """``cmd`` run as the ``postgres`` system user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        raise ArtShiftError("running as root needs the 'postgres' system user (apt-get install postgresql)") from None
    return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--", *cmd]


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run ``cmd``; a failure becomes a :class:`ServerError` with its last line of output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or [f"exit code {result.returncode}"]
        raise ServerError(f"{what} failed: {lines[-1]}")
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def load_ports(layout: Layout, postgres_port: int | None, mlflow_port: int | None) -> dict[str, int]:
    """The two ports of this setup: the saved ones, else those asked for, else spare ones."""
    if layout.ports.is_file():
        return json.loads(layout.ports.read_text())
    ports = {"postgres": postgres_port or free_port(), "mlflow": mlflow_port or free_port()}
    layout.ports.write_text(json.dumps(ports) + "\n")
    return ports


def _password(layout: Layout) -> str:
    """The database password, created on first use in ``pgpass`` (libpq's format, mode 0600)."""
    if not layout.pgpass.is_file():
        password = secrets.token_urlsafe(24)
        fd = os.open(layout.pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f"{HOST}:*:*:{DB_USER}:{password}\n")
    return layout.pgpass.read_text().strip().rsplit(":", 1)[1]


def _give_to_postgres(path: Path) -> None:
    """When root, hand ``path`` to the ``postgres`` user that will read or own it."""
    if os.geteuid() == 0:
        user = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def init_cluster(layout: Layout, port: int) -> None:
    """Create the cluster (superuser ``artshift``, password auth, TCP on 127.0.0.1 only) once."""
    if (layout.pgdata / "PG_VERSION").is_file():
        return
    layout.pgdata.mkdir(mode=0o700, exist_ok=True)
    _give_to_postgres(layout.pgdata)
    if subprocess.run(_as_postgres(["test", "-w", str(layout.pgdata)])).returncode != 0:
        raise ArtShiftError(f"{layout.pgdata}: the {POSTGRES_SYSTEM_USER} user cannot reach it (a folder above is "
                            "private); use a --dir it can reach, e.g. --dir /srv/artshift-team")
    pwfile = layout.root / ".initial-password"  # initdb wants an empty data folder
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(_password(layout) + "\n")
    _give_to_postgres(pwfile)
    try:
        _run(_as_postgres([postgres_binary("initdb"), "-D", str(layout.pgdata), "-U", DB_USER, "-E", "UTF8",
                           f"--pwfile={pwfile}", "--auth=scram-sha-256", "--no-instructions"]), "initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    with (layout.pgdata / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# artshift tracking server\nlisten_addresses = '{HOST}'\nport = {port}\n"
                   "unix_socket_directories = ''\n")


def postgres_running(layout: Layout) -> bool:
    """Whether the cluster's server is up (``pg_ctl status``)."""
    if not (layout.pgdata / "PG_VERSION").is_file():
        return False
    status = subprocess.run(_as_postgres([postgres_binary("pg_ctl"), "status", "-D", str(layout.pgdata)]),
                            capture_output=True)
    return status.returncode == 0


def start_postgres(layout: Layout, port: int) -> None:
    """Start the cluster and wait until it accepts connections; create the MLflow database once."""
    if not postgres_running(layout):
        _run(_as_postgres([postgres_binary("pg_ctl"), "start", "-D", str(layout.pgdata), "-w", "-t", "120",
                           "-l", str(layout.pgdata / "server.log")]),
             f"starting PostgreSQL (log: {layout.pgdata / 'server.log'})")
    _create_database(layout, port)


def _create_database(layout: Layout, port: int) -> None:
    """Create the ``mlflow`` database unless it exists."""
    import psycopg2

    try:
        conn = psycopg2.connect(host=HOST, port=port, user=DB_USER, dbname="postgres", password=_password(layout),
                                connect_timeout=10)
    except psycopg2.Error as exc:
        raise ServerError(f"PostgreSQL on {HOST}:{port} does not answer: {str(exc).strip().splitlines()[0]}") from None
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        conn.close()


def stop_postgres(layout: Layout) -> bool:
    """Stop the cluster (fast shutdown); False when it was not running."""
    if not postgres_running(layout):
        return False
    _run(_as_postgres([postgres_binary("pg_ctl"), "stop", "-D", str(layout.pgdata), "-m", "fast", "-w"]),
         "stopping PostgreSQL")
    return True


def tracking_uri(port: int) -> str:
    """The URI clients export as ``MLFLOW_TRACKING_URI``."""
    return f"http://{HOST}:{port}"


def backend_store_uri(port: int) -> str:
    """The server's store URI: no password in it; libpq reads it from ``PGPASSFILE``."""
    return f"postgresql+psycopg2://{DB_USER}@{HOST}:{port}/{DB_NAME}"


def mlflow_pid(layout: Layout) -> int | None:
    """The pid of this setup's ``mlflow server`` if it is still running, else None."""
    try:
        pid = int(layout.mlflow_pid.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"mlflow" in cmdline else None


def answers(uri: str) -> bool:
    """Whether the MLflow server at ``uri`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def start_mlflow(layout: Layout, port: int, postgres_port: int) -> None:
    """Start ``mlflow server`` in its own session (it outlives this command) and wait for it."""
    layout.artifacts.mkdir(exist_ok=True)
    # Server-side jobs (GenAI trace scoring) spawn several worker processes ArtShift never uses.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ, "PGPASSFILE": str(layout.pgpass.resolve()),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri(postgres_port),
           "--artifacts-destination", str(layout.artifacts.resolve()), "--host", HOST, "--port", str(port),
           "--workers", "1"]
    with layout.mlflow_log.open("ab") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                   start_new_session=True)
    layout.mlflow_pid.write_text(f"{process.pid}\n")
    wait_for_mlflow(layout, port, process)


def _live_pid(layout: Layout, process: subprocess.Popen | None) -> int | None:
    """The server's pid while it runs: ``process`` when this command started it (its exit status
    is the test, as ``/proc/<pid>/cmdline`` can still be empty just after the exec), else the
    pid file's."""
    if process is None:
        return mlflow_pid(layout)
    return process.pid if process.poll() is None else None


def wait_for_mlflow(layout: Layout, port: int, process: subprocess.Popen | None = None) -> None:
    """Wait until the server answers; stop it and fail if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(tracking_uri(port)):
        pid = _live_pid(layout, process)
        if pid is None or time.monotonic() > deadline:
            if pid is not None:
                _kill_group(pid)
            raise ServerError(f"mlflow server did not start: {_last_line(layout.mlflow_log)} "
                              f"(log: {layout.mlflow_log})")
        time.sleep(1)


def _last_line(path: Path) -> str:
    """The last non-empty line of a log file."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _kill_group(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid`` (the server and its workers), SIGKILL after ``grace_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while _group_alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # collect it when it is our own child


def start(layout: Layout, postgres_port: int | None = None, mlflow_port: int | None = None) -> str:
    """Start PostgreSQL and the MLflow server (each only if not running); returns the tracking URI."""
    layout.root.mkdir(parents=True, exist_ok=True)
    ports = load_ports(layout, postgres_port, mlflow_port)
    uri = tracking_uri(ports["mlflow"])
    if postgres_running(layout) and mlflow_pid(layout) and answers(uri):
        print(f"tracking server already running at {uri} (data in {layout.root})", file=sys.stderr)
        return uri
    init_cluster(layout, ports["postgres"])
    start_postgres(layout, ports["postgres"])
    print(f"PostgreSQL running on {HOST}:{ports['postgres']} (data in {layout.pgdata})", file=sys.stderr)
    if mlflow_pid(layout) is None:
        start_mlflow(layout, ports["mlflow"], ports["postgres"])
    else:  # started by another command a moment ago
        wait_for_mlflow(layout, ports["mlflow"])
    print(f"mlflow server running at {uri}: store {backend_store_uri(ports['postgres'])}, "
          f"artifacts proxied to {layout.artifacts} (log: {layout.mlflow_log})", file=sys.stderr)
    return uri


def stop(layout: Layout) -> None:
    """Stop the MLflow server, then PostgreSQL; says what was running."""
    pid = mlflow_pid(layout)
    if pid is not None:
        _kill_group(pid)
        print("mlflow server stopped", file=sys.stderr)
    else:
        print("mlflow server was not running", file=sys.stderr)
    layout.mlflow_pid.unlink(missing_ok=True)
    stopped = stop_postgres(layout)
    print("PostgreSQL stopped" if stopped else "PostgreSQL was not running", file=sys.stderr)


def status(layout: Layout) -> bool:
    """Print whether each server runs; True when both do."""
    ports = json.loads(layout.ports.read_text()) if layout.ports.is_file() else None
    pg_up = postgres_running(layout)
    ml_up = ports is not None and mlflow_pid(layout) is not None and answers(tracking_uri(ports["mlflow"]))
    print(f"PostgreSQL: {'running on ' + HOST + ':' + str(ports['postgres']) if pg_up else 'stopped'}")
    print(f"mlflow server: {'running at ' + tracking_uri(ports['mlflow']) if ml_up else 'stopped'}")
    return pg_up and ml_up


def command(args: argparse.Namespace) -> None:
    """Run the ``start``, ``stop`` or ``status`` action of the command line."""
    layout = Layout(Path(args.dir).absolute())
    if args.action == "start":
        print(f"export MLFLOW_TRACKING_URI={start(layout, args.postgres_port, args.port)}")
    elif args.action == "stop":
        stop(layout)
    elif not status(layout):
        raise ServerError(f"the tracking server in {layout.root} is not running (make tracking-server)")


def build_parser() -> argparse.ArgumentParser:
    """Arguments: the action, the folder and (first start only) the ports."""
    parser = argparse.ArgumentParser(prog="python -m artshift.tracking_server", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=os.environ.get("ARTSHIFT_TEAM_DIR", ".team"),
                        help="folder for the database, artifacts, logs and ports (default .team or $ARTSHIFT_TEAM_DIR)")
    parser.add_argument("--port", type=int, help="MLflow server port on first start (default: a spare one)")
    parser.add_argument("--postgres-port", type=int, help="PostgreSQL port on first start (default: a spare one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m artshift.tracking_server``."""
    return run_main(command, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
