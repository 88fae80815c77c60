"""A real PostgreSQL server for tests: Debian's ``postgresql`` package (``.ci/run`` installs it),
initialised in a temporary folder and started on 127.0.0.1 on a free port, never as a system
service; stopped (``pg_ctl stop``) and removed afterwards. PostgreSQL refuses to run as root:
as root the server runs as the ``postgres`` user (``runuser``)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from .s3_server import free_port


@dataclass
class PostgresServer:
    folder: str
    port: int
    bin: str
    as_user: list[str]

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``optuna`` database, without credentials (trust authentication)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/optuna"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, f"{self.bin}/pg_ctl", "-D", f"{self.folder}/data", *args],
                              capture_output=True, text=True, timeout=timeout)


def postgres_bin() -> str | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def start_postgres() -> PostgresServer:
    """initdb (trust, no fsync) + pg_ctl start -w on 127.0.0.1:<free port> + createdb optuna."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does it)")
    folder = tempfile.mkdtemp(prefix="dragsaw-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(folder, 0o700)
    run = {"capture_output": True, "text": True, "timeout": 120, "check": True}
    subprocess.run([*as_user, f"{bin_dir}/initdb", "-D", f"{folder}/data", "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], **run)
    server = PostgresServer(folder, free_port(), bin_dir, as_user)
    options = (f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={folder} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    started = server.ctl("-l", f"{folder}/server.log", "-w", "-t", "30", "-o", options, "start")
    if started.returncode != 0:
        log = open(f"{folder}/server.log").read() if os.path.exists(f"{folder}/server.log") else ""
        stop_postgres(server)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
    subprocess.run([*as_user, f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                    "optuna"], **run)
    return server


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server (fast shutdown) and remove its folder."""
    try:
        server.ctl("-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)
