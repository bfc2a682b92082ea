"""A local sweep (no --address) keeps Ray's traffic on loopback: every socket that the sweep's
processes listen on is bound to 127.0.0.1, read from /proc while trials run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LISTEN = "0A"  # the TCP state column of /proc/net/tcp*


def descendants(root: int) -> set[int]:
    """`root` and every process below it (Ray's GCS, raylet, workers and agents)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_addresses() -> dict[str, str]:
    """inode -> local address of every listening TCP socket (IPv4 and IPv6) on the machine."""
    out = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            hex_ip = fields[1].split(":")[0]
            out[fields[9]] = ipv4(hex_ip) if width == 8 else ipv6(hex_ip)
    return out


def ipv4(hex_ip: str) -> str:
    return ".".join(str(b) for b in reversed(bytes.fromhex(hex_ip)))


def ipv6(hex_ip: str) -> str:
    words = bytes.fromhex(hex_ip)
    raw = b"".join(words[i : i + 4][::-1] for i in range(0, 16, 4))
    if raw[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped
        return ".".join(str(b) for b in raw[12:])
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))


@pytest.mark.slow
def test_a_local_sweep_listens_on_loopback_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    driver = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "sweeps" / "grammar_grid.py"),
            "--datasets",
            "brackets",
            "--lrs",
            "1.0",
            "--seeds",
            "0",
            "1",
            "--epochs",
            "20",
            "--n",
            "5000",
            "--num-samples",
            "5",
            "--storage",
            str(tmp_path),
            "--name",
            "l",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "l").glob("members/*/rows.jsonl")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # until trials are running, so every Ray process is up
        assert driver.poll() is None, "the sweep ended before its sockets could be read"
        listening = listening_addresses()
        seen = {}
        for pid in descendants(driver.pid):
            seen.update({inode: listening[inode] for inode in socket_inodes(pid) if inode in listening})
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, nothing else
        driver.wait()
    assert len(seen) >= 5, f"too few listening sockets found to judge: {seen}"  # GCS, raylet, agents, workers
    assert set(seen.values()) == {"127.0.0.1"}, sorted(seen.values())
