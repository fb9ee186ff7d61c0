"""A two-node Ray cluster on loopback for the Ray benchmarks (``ray_resolve.py``,
``ray_autolabel.py``): a head node and a second node that joins it, as ``ray start --head`` and
``ray start --address`` would start them on two hosts.

Each node is a ``ray start --block`` process of its own: ending that process (by its id) stops
that node's raylet, object store and workers, so leaving the block stops exactly the cluster it
started, and nothing else that runs Ray on the machine (``ray stop --force`` would end every Ray
process of the user, other sessions' included). The nodes keep their sessions in a temporary
folder of their own, removed at the end: ``ray start`` writes the cluster's address there, and
in the default ``/tmp/ray`` that address, stale once the nodes stop, is what a later
``ray.init()`` without an address would try to join.

Ray 2.60's ``ray start`` turns token authentication on when a token exists (``~/.ray/auth_token``,
which any local ``ray.init()`` creates), but a driver that joins by address uses it only when
``RAY_AUTH_MODE=token`` was set before it imported Ray: otherwise every call is refused
(``InvalidAuthToken``). So importing this module sets it (unless the caller chose a mode), and
the benchmarks import it before Ray; the nodes inherit the same mode, and get a token if none
exists. ``veritag autolabel --engine ray:ADDRESS`` against such a cluster needs the same variable.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RAY", "two_node_cluster"]

RAY = str(Path(sys.executable).with_name("ray"))
os.environ.setdefault("RAY_AUTH_MODE", "token")
#: Seconds a node may take to start, and to stop once asked.
START_SECONDS = 120.0
STOP_SECONDS = 60.0


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _alive(node: subprocess.Popen[bytes], command: list[str]) -> None:
    """Refuse to go on with a node whose ``ray start`` has exited: it never joined or it died."""
    if node.poll() is not None:
        raise RuntimeError(f"{' '.join(command)} exited with status {node.returncode}")


def _wait_for_head(node: subprocess.Popen[bytes], command: list[str], port: int) -> None:
    """Until the head's GCS answers on ``port``, so that a second node can join it."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        _alive(node, command)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no Ray head on 127.0.0.1:{port} after {START_SECONDS:.0f} s")


def _wait_for_nodes(address: str, count: int, nodes: list[subprocess.Popen[bytes]]) -> None:
    """Until ``count`` nodes of the cluster at ``address`` are alive: a benchmark that starts
    before the second one joined would run on one node."""
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        deadline = time.monotonic() + START_SECONDS
        while sum(n["Alive"] for n in ray.nodes()) < count:
            for node in nodes:
                _alive(node, [RAY, "start"])
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} Ray nodes at {address}")
            time.sleep(0.5)
    finally:
        ray.shutdown()


@contextmanager
def two_node_cluster(port: int = 6391, cpus: int = 1) -> Iterator[str]:
    """A head node and a node that joins it, ``cpus`` CPUs each, on 127.0.0.1; the address to
    pass to ``ray.init`` (or ``--engine ray:ADDRESS``). Both are stopped when the block ends."""
    address = f"127.0.0.1:{port}"
    head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false"]
    joined = [RAY, "start", f"--address={address}"]
    sessions = tempfile.mkdtemp(prefix="ray-2n-")  # short: Ray's socket paths live under it
    common = [f"--num-cpus={cpus}", f"--temp-dir={sessions}", "--block"]
    if os.environ["RAY_AUTH_MODE"] == "token":  # a token for the nodes and the drivers to share
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(_start([*head, *common]))
        _wait_for_head(nodes[0], head, port)
        nodes.append(_start([*joined, *common]))
        _wait_for_nodes(address, 2, nodes)
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in reversed(nodes):
            try:
                node.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        shutil.rmtree(sessions, ignore_errors=True)
