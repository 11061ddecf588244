"""A one-node SLURM cluster on localhost for the end-to-end launch test (started and stopped by the test).

Everything lives in one private folder: a MUNGE key and socket, ``slurm.conf`` (``SLURM_CONF``
points every SLURM command at it), state, spool, pid and log files. ``munged``, ``slurmctld`` and
``slurmd`` run in the foreground as children of the test and are stopped by their process ids.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

TOOLS = ("sbatch", "sinfo", "slurmctld", "slurmd", "munged")


def missing_tools() -> list[str]:
    """The SLURM and MUNGE programs the cluster needs that are not installed."""
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin") / name)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _conf(d: Path, host: str, cpus: int, mem_mb: int, ports: list[int]) -> str:
    return f"""ClusterName=stablelm2test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge.socket
CredType=cred/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def one_node_cluster(d: Path) -> Iterator[dict[str, str]]:
    """Start MUNGE and SLURM in ``d``; yield the environment SLURM's commands need; stop the daemons."""
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    for sub in ("state", "spool"):
        (d / sub).mkdir(exist_ok=True)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    host = socket.gethostname().split(".")[0]
    mem_mb = int(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 * 0.5)
    (d / "slurm.conf").write_text(_conf(d, host, os.cpu_count() or 1, mem_mb, _free_ports(2)))
    env = {**os.environ, "SLURM_CONF": str(d / "slurm.conf")}
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for argv in ([_tool("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={d}/munge.socket",
                      f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                     [_tool("slurmctld"), "-D", "-i"], [_tool("slurmd"), "-D"]):
            log = open(d / f"{Path(argv[0]).name}.out", "w")  # noqa: SIM115 (closed below)
            logs.append(log)
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            if state.returncode == 0 and state.stdout.strip().startswith("idle"):
                break
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
        else:
            state = None
        if state is None or not state.stdout.strip().startswith("idle"):
            raise RuntimeError("the one-node SLURM cluster did not come up:\n" + describe(d))
        yield env
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in logs:
            log.close()


def describe(d: Path) -> str:
    """The daemons' logs, for a failure message."""
    out = []
    for name in ("munged.out", "munged.log", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log"):
        f = d / name
        if f.is_file():
            out.append(f"--- {name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(out)
