"""The same shards on Dask: a LocalCluster, and a real scheduler with 2 workers on loopback, byte-identical to local."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import beyond_probes, run_cli, sample_rows, write_csv

from augshard.events.stream import read_events

pytest.importorskip("distributed")
pytestmark = [pytest.mark.slow, pytest.mark.serial]  # timing: run alone (see Makefile)

BIN = Path(sys.executable).parent


def args(root: Path, *extra: str) -> list[str]:
    return ["run", "--input", str(root / "in.csv"), "--text-col", "text", "--evidence-col", "evidence", "--id-col",
            "id", "--methods", "nlp_keyboard,nlp_randword_delete,nlp_spelling", "--quality-metric", "char_ratio",
            "--num-shards", "2", "--no-live", *extra]  # fmt: skip


def datasets(cwd: Path) -> dict[str, bytes]:
    root = cwd / "data/processed/augsets"
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("dask")
    write_csv(root / "in.csv", sample_rows(24))
    cwd = root / "local"
    cwd.mkdir()
    proc = run_cli(*args(root), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = datasets(cwd)
    assert len(out) == 6
    return root, out


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A `dask scheduler` and two `dask worker` processes on loopback, torn down afterwards."""
    info = tmp_path / "scheduler.json"
    env = dict(os.environ)
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    deadline = time.time() + 60
    while not info.exists() and time.time() < deadline:
        time.sleep(0.2)
    address = json.loads(info.read_text())["address"]
    workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                                 "--no-nanny", "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
    procs += workers
    try:
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_dask_local_gives_the_same_datasets(local: tuple[Path, dict], tmp_path: Path) -> None:
    root, expected = local
    proc = run_cli(*args(root, "--executor", "dask-local"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert datasets(tmp_path) == expected
    # Nothing on stderr: no RuntimeWarning from the shard processes the workers start (`-m` of a module the package
    # had imported already), no library warning.
    assert beyond_probes(proc.stderr) == [], proc.stderr


def test_a_real_cluster_gives_the_same_datasets(local: tuple[Path, dict], cluster: tuple, tmp_path: Path) -> None:
    root, expected = local
    address, _ = cluster
    proc = run_cli(*args(root, "--executor", "dask", "--scheduler", address), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert datasets(tmp_path) == expected
    monitor = run_cli("monitor", cwd=tmp_path)  # the shared log dir tells the story, wherever shards ran
    assert monitor.returncode == 0 and monitor.stdout.count("✓ done") == 2, monitor.stdout


def test_a_lost_dask_worker_does_not_lose_the_run(local: tuple[Path, dict], cluster: tuple, tmp_path: Path) -> None:
    root, expected = local
    address, workers = cluster
    run = subprocess.Popen([sys.executable, "-m", "augshard", *args(root, "--executor", "dask", "--scheduler",
                            address)], cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    stream = tmp_path / "logs/augment/shard_0_of_2.events.jsonl"
    shard_pid = None
    deadline = time.time() + 180
    while shard_pid is None and time.time() < deadline:
        if stream.exists():
            evs = read_events(stream)
            if any(e.kind == "combo_done" for e in evs):  # mid-shard: one of its 3 combos is done
                shard_pid = evs[0].pid
        time.sleep(0.05)
    assert shard_pid is not None
    # The shard runs in a process its Dask worker started: kill that worker, as a lost node would be.
    worker_pid = int(Path(f"/proc/{shard_pid}/stat").read_text().split()[3])
    assert worker_pid in [w.pid for w in workers]
    os.kill(worker_pid, signal.SIGKILL)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    assert datasets(tmp_path) == expected


class _Planted:
    """What a hostile writer of the shared log folder plants: unpickling it creates `path` (code of theirs runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def test_a_dask_job_crosses_as_json_and_a_swapped_job_file_runs_nothing(tmp_path: Path) -> None:
    import io
    import pickle
    import threading

    from distributed import LocalCluster
    from rich.console import Console

    from augshard.core.config import RunConfig
    from augshard.runner.executors import DaskExecutor
    from augshard.runner.job import ShardJob, ShardResult
    from augshard.runner.preflight import preflight
    from augshard.runner.supervisor import make_jobs
    from augshard.shard.loop import run_shard

    write_csv(tmp_path / "in.csv", sample_rows(6))
    logs, marker, victim = tmp_path / "logs", tmp_path / "their-code-ran", tmp_path / "victim.txt"
    victim.write_text("mine", encoding="utf-8")
    folders = {"output_root": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "log_dir": str(logs)}
    cfg = RunConfig(input=str(tmp_path / "in.csv"), text_col="text", evidence_col="evidence", id_col="id",
                    methods=("nlp_keyboard",), quality_metric="char_ratio", num_shards=1, executor="dask",
                    **folders)  # fmt: skip
    (job,) = make_jobs(preflight(cfg, Console(file=io.StringIO())))

    # Another writer of the log folder swaps every job file it sees and plants a link where a result would go.
    seen: list[str] = []
    stop = threading.Event()

    def hostile() -> None:
        while not stop.is_set():
            for path in list(logs.glob(".shard_*")) if logs.is_dir() else []:
                seen.append(path.name)
                if path.name.endswith(".job"):
                    path.write_bytes(pickle.dumps(_Planted(marker)))
                    link = path.with_suffix(".result.tmp")
                    link.unlink(missing_ok=True)
                    link.symlink_to(victim)
            time.sleep(0.001)

    env = dict(os.environ)  # the worker plugin sets the offline environment in this process (processes=False)
    spy = threading.Thread(target=hostile, daemon=True)
    spy.start()
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            executor = DaskExecutor("dask", 1, cluster.scheduler_address)
            try:
                result = executor.submit(run_shard, job).result(timeout=300)
                with pytest.raises(TypeError):
                    executor.submit(print, job)  # nothing but a shard job is ever sent
            finally:
                executor.shutdown()
    finally:
        stop.set()
        spy.join()
        os.environ.clear()
        os.environ.update(env)
    assert isinstance(result, ShardResult) and [o.status.value for o in result.outcomes] == ["ok"]
    assert not marker.exists() and victim.read_text(encoding="utf-8") == "mine"
    assert seen == [] and not [p.name for p in logs.iterdir() if p.name.startswith(".shard_")]
    # The job is data: it reads back as the same job, and anything else is refused before a call is made.
    assert ShardJob.from_json(job.to_json()) == job
    with pytest.raises(ValueError):
        ShardJob.from_json(json.dumps({"version": 1, "fn": "os.system"}))


def test_a_tls_scheduler_takes_its_certificates_from_dasks_configuration(tmp_path: Path) -> None:
    """`--scheduler tls://…`: the client's CA, certificate and key come through Dask's own settings (Security());
    without them the connection is one line naming the variables to set."""
    import io
    import shutil

    import dask
    from distributed import LocalCluster
    from distributed.security import Security
    from rich.console import Console

    from augshard.core.config import RunConfig
    from augshard.core.errors import ConfigError
    from augshard.runner.executors import DaskExecutor
    from augshard.runner.preflight import preflight
    from augshard.runner.supervisor import make_jobs
    from augshard.shard.loop import run_shard

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)  # fmt: skip
    c, k = str(cert), str(key)
    security = Security(tls_ca_file=c, tls_client_cert=c, tls_client_key=k, tls_scheduler_cert=c, tls_scheduler_key=k,
                        tls_worker_cert=c, tls_worker_key=k, require_encryption=True)  # fmt: skip
    write_csv(tmp_path / "in.csv", sample_rows(4))
    folders = {"output_root": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "log_dir": str(tmp_path)}
    cfg = RunConfig(input=str(tmp_path / "in.csv"), text_col="text", evidence_col="evidence", id_col="id",
                    methods=("nlp_keyboard",), quality_metric="char_ratio", num_shards=1, executor="dask",
                    **folders)  # fmt: skip
    (job,) = make_jobs(preflight(cfg, Console(file=io.StringIO())))
    env = dict(os.environ)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                          security=security, protocol="tls", host="127.0.0.1") as cluster:  # fmt: skip
            address = cluster.scheduler_address
            assert address.startswith("tls://")
            with pytest.raises(ConfigError, match="DASK_DISTRIBUTED__COMM__TLS__CA_FILE"):
                DaskExecutor("dask", 1, address)
            tls = {"distributed.comm.tls.ca-file": c, "distributed.comm.tls.client.cert": c,
                   "distributed.comm.tls.client.key": k, "distributed.comm.require-encryption": True}  # fmt: skip
            with dask.config.set(tls):
                executor = DaskExecutor("dask", 1, address)
                try:
                    result = executor.submit(run_shard, job).result(timeout=300)
                finally:
                    executor.shutdown()
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert [o.status.value for o in result.outcomes] == ["ok"]
