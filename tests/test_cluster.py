"""Sweeps on real Ray clusters on this machine: a head and a worker node on their own loopback
addresses (127.0.0.2 / 127.0.0.3), reached with --address, RAY_ADDRESS and `ray job submit`;
and cluster.yaml checked by Ray's own cluster-launcher validation."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from jsonschema.exceptions import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.cluster_utils import Cluster

from rnnbench import results

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--models", "mlp", "--lrs", "0.1", "0.3", "--seeds", "0", "1", "--epochs", "2", "--embed-dim", "16", "--hidden-dim", "16"]


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def test_cluster_yaml_passes_ray_validation():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["file_mounts"] == {"~/rnnbench": "."}
    assert any("pip install" in command and "rnnbench" in command for command in config["setup_commands"])
    broken = copy.deepcopy(config)
    broken["provider"] = {"head_ip": "192.0.2.10"}  # no provider type: the launcher cannot start anything
    with pytest.raises((ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(broken))


@pytest.fixture(scope="module")
def two_nodes():
    """Head on 127.0.0.2 and a worker node on 127.0.0.3, one CPU each."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.2"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.3")
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.mark.parametrize("how", [pytest.param("--address", marks=pytest.mark.slow), "RAY_ADDRESS"])
def test_grid_on_two_node_cluster_uses_both_nodes(two_nodes, tiny_imdb, tmp_path, how):
    args = ["--address", two_nodes.address] if how == "--address" else []
    env = {**os.environ, "RAY_ADDRESS": two_nodes.address} if how == "RAY_ADDRESS" else os.environ
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "sweeps" / "imdb_grid.py"),
            *args,
            "--data",
            str(tiny_imdb),
            *GRID,
            "--storage",
            str(tmp_path),
            "--name",
            "c",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(tmp_path / "c")
    assert df["trial"].nunique() == 4 and len(df) == 8 and set(df["status"]) == {"finished"}
    assert set(df.drop_duplicates("trial")["node_ip"]) == {"127.0.0.2", "127.0.0.3"}


@pytest.mark.slow  # a whole sweep on a real Ray: the fast tier has one such run per CLI
def test_ray_job_submit_runs_a_sweep(tiny_imdb, tmp_path):
    """One node here: nodes faked on one machine share Ray's runtime_resources folder, where a
    second node would unpack the job's working dir over the running driver's."""
    port = free_port("127.0.0.2")
    head = Cluster(
        initialize_head=True,
        head_node_args={  # own ports: another Ray may hold the defaults
            "num_cpus": 2,
            "node_ip_address": "127.0.0.2",
            "dashboard_host": "127.0.0.2",
            "dashboard_port": port,
            "dashboard_agent_listen_port": free_port("127.0.0.2"),
            "metrics_export_port": free_port("127.0.0.2"),
        },
    )
    try:
        deadline = time.monotonic() + 180  # the job agent comes up some seconds after the head: poll until it answers
        while True:
            done = subprocess.run(
                [
                    "ray",
                    "job",
                    "submit",
                    "--address",
                    f"http://127.0.0.2:{port}",
                    "--working-dir",
                    str(ROOT),
                    "--",
                    "python",
                    "sweeps/imdb_grid.py",
                    "--data",
                    str(tiny_imdb),
                    *GRID,
                    "--storage",
                    str(tmp_path),
                    "--name",
                    "j",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=ROOT,
            )
            if "No available agent" not in done.stdout + done.stderr or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        head.shutdown()
    assert done.returncode == 0, done.stdout[-3000:]
    assert "succeeded" in done.stdout
    df = results.load(tmp_path / "j")
    assert df["trial"].nunique() == 4 and set(df["status"]) == {"finished"}
