"""Data-parallel training across two hosts: two Linux network namespaces on this machine,
each its own "host" with its own address on a veth pair, run Paddle's launcher with its
multi-node options (--master, --nnodes, --rank, --host), one process each, into one shared
output folder; the result must match a one-process run as closely as two processes on one
host do (tests/test_distributed.py). Needs root and `ip netns`; skipped where namespaces
cannot be made. Traffic stays on the pair's own addresses (10.231.N.1 and .2), and each
launcher is bounded by a timeout.

What it shows for real hosts (README, "Several hosts"): the same launcher command on each
host, rank 0's address as --master, GLOO_SOCKET_IFNAME naming the interface the hosts
reach each other on (gloo otherwise announces the address the host name resolves to, here
127.0.0.1), and an output folder every host reads (rank 0 alone writes it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, rec

pytestmark = pytest.mark.slow
MAIN = ROOT / "rec" / "__main__.py"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


@pytest.fixture
def hosts():
    """Two namespaces joined by a veth pair: [(namespace, interface, address)] x 2."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = f"rec{os.getpid() % 100000}"
    in_use = _ip("-o", "addr", check=False).stdout
    subnet = next((n for n in range(231, 251) if f"10.{n}." not in in_use), None)
    if subnet is None:
        pytest.skip("no free 10.N.0.0/24 for the pair")
    made = []
    try:
        for i in (0, 1):
            _ip("netns", "add", f"{tag}h{i}")
            made.append(f"{tag}h{i}")
        _ip("link", "add", f"{tag}v0", "type", "veth", "peer", "name", f"{tag}v1")
        out = []
        for i in (0, 1):
            ns, dev, addr = f"{tag}h{i}", f"{tag}v{i}", f"10.{subnet}.0.{i + 1}"
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            out.append((ns, dev, addr))
    except (subprocess.CalledProcessError, OSError) as e:
        for ns in made:
            _ip("netns", "del", ns, check=False)
        pytest.skip(f"cannot make network namespaces here: {getattr(e, 'stderr', e)}")
    yield out
    for ns in made:  # deleting a namespace deletes its end of the pair, and so the pair
        _ip("netns", "del", ns, check=False)


def launcher(ns: str, dev: str, addr: str, master: str, rank: int, root: Path,
             args: list[str]) -> subprocess.Popen:
    """One host's share: Paddle's launcher, one process, in the host's namespace."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": dev}
    env.pop("PADDLE_TRAINERS_NUM", None)
    cmd = ["ip", "netns", "exec", ns, "timeout", "240", sys.executable, "-m",
           "paddle.distributed.launch", "--master", master, "--nnodes", "2",
           "--nproc_per_node", "1", "--rank", str(rank), "--host", addr,
           "--log_dir", str(root / f"logs-host{rank}"), str(MAIN),
           "--data-dir", str(root / "data"), "--output-dir", str(root / "output"), "--quiet",
           "train", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_two_hosts_train_as_one_process(hosts, tmp_path):
    world = tmp_path / "w"
    assert rec(world, "download", "--dataset", "synthetic", "--users", "300", "--movies",
               "200", "--ratings", "25000").exit_code == 0
    assert rec(world, "preprocess").exit_code == 0
    single = tmp_path / "single"
    shutil.copytree(world, single)
    assert rec(single, "train", "--epochs", "3").exit_code == 0
    one = json.loads((single / "output" / "model" / "best" / "metrics.json").read_text())

    master = f"{hosts[0][2]}:8090"
    procs = [launcher(*host, master, rank, world, ["--epochs", "3", "--format", "json"])
             for rank, host in enumerate(hosts)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    two = json.loads((world / "output" / "model" / "best" / "metrics.json").read_text())
    assert two["processes"] == 2 and two["epochs_run"] == 3
    assert abs(two["tune_rmse"] - one["tune_rmse"]) < 1e-3 * one["tune_rmse"]
    assert abs(two["tune_ndcg@10"] - one["tune_ndcg@10"]) < 1e-2 * one["tune_ndcg@10"]
    assert abs(two["pick_loss"] - one["pick_loss"]) < 1e-4 * one["pick_loss"]
    # rank 0 (host 0) printed the result; each host's launcher kept its own worker log
    assert '"processes": 2' in outputs[0]
    assert (world / "logs-host0" / "workerlog.0").exists()
    assert (world / "logs-host1" / "workerlog.0").exists()
