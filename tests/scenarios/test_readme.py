"""The README's first command, as a newcomer runs it (after the install part)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import signal
from pathlib import Path

from engine_support import REPO_ROOT, hean_executable
from hean_sandbox.controlplane.build import read_pins


def readme_main_command() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    first = block.splitlines()[0]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    command = shlex.split(first.rsplit(" && ", 1)[1])
    assert command[:3] == [".venv/bin/hean", "sandbox", "up"]
    return [hean_executable(), *command[1:]]


async def test_readme_sandbox_shows_a_running_engine_with_moving_equity(tmp_path: Path) -> None:
    """The real control plane comes up (kube-apiserver built from k8s.io/kubernetes at
    the pinned release), the operator runs as a pod of the chart, the example engine
    runs with moving equity, the README's follow-up kubectl works, and Ctrl-C leaves
    no process behind."""
    kubeconfig = tmp_path / "kubeconfig"
    bin_dir = tmp_path / "bin"
    # The README's command, with its state written under tmp_path instead of .hean/
    command = [
        *readme_main_command(),
        "--kubeconfig",
        str(kubeconfig),
        "--workdir",
        str(tmp_path / "sandbox"),
        "--bin-dir",
        str(bin_dir),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []
    kubectl = str(bin_dir / "kubectl")

    async def run(*args: str) -> str:
        child = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == 0, out.decode()
        return out.decode()

    try:
        assert process.stdout is not None
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 900)).decode()
            assert line, "".join(output)
            output.append(line)
            if line.startswith("try:"):
                break
        assert any("tradingengine.hean.io/btc-paper created" in line for line in output)
        # the README's follow-up command, with the kubectl the sandbox linked
        assert "get tradingengines" in line
        await run(
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "wait",
            "--for=condition=Ready",
            "tradingengine/btc-paper",
            "--timeout=120s",
        )
        version = json.loads(
            await run(kubectl, "--kubeconfig", str(kubeconfig), "version", "-o", "json")
        )
        pins = read_pins()
        assert version["serverVersion"]["gitVersion"] == pins.kubernetes
        assert version["clientVersion"]["gitVersion"] == pins.kubernetes
        # the process serving the API is the kube-apiserver built from k8s.io/kubernetes
        pid = (await run("pgrep", "-f", f"kube-apiserver .*{tmp_path}")).split()[0]
        built = await run(go_binary(), "version", "-m", f"/proc/{pid}/exe")
        assert "k8s.io/kubernetes/cmd/kube-apiserver" in built
        assert re.search(rf"\bk8s\.io/kubernetes\s+{re.escape(pins.kubernetes)}\b", built), built
        # the operator is a pod of the chart's Deployment, authenticated as its ServiceAccount
        pods = json.loads(
            await run(
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "-n",
                "hean-system",
                "get",
                "pods",
                "-o",
                "json",
            )
        )["items"]
        operator = next(
            p
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"
        )
        assert operator["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert operator["spec"]["serviceAccountName"] == "hean"
        assert operator["spec"]["nodeName"]  # bound by the scheduler
        moved = await asyncio.wait_for(_equity_moves(kubectl, kubeconfig), 180)
        assert moved not in ("", "100000")
        shown = await run(kubectl, "--kubeconfig", str(kubeconfig), "get", "tradingengines")
        row = shown.splitlines()[1].split()
        assert row[:5] == ["btc-paper", "paper", "Running", "ACTIVE", "True"]
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, rest.decode()
        assert "stopping the sandbox" in rest.decode()
        # nothing it started is left: every process of the sandbox names its workdir
        left = await asyncio.create_subprocess_exec(
            "pgrep", "-af", str(tmp_path / "sandbox"), stdout=asyncio.subprocess.PIPE
        )
        leftover, _ = await left.communicate()
        assert leftover.decode().strip() == ""
    finally:
        if process.returncode is None:
            # Ctrl-C, as a user stops it: the sandbox stops what it started (a SIGKILL
            # would leave its control plane and pods running).
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 120)
            except TimeoutError:
                process.kill()
                await process.wait()


def go_binary() -> str:
    found = shutil.which("go")
    assert found is not None, "the Go toolchain is needed to build the sandbox"
    return found


async def _equity_moves(kubectl: str, kubeconfig: Path) -> str:
    """Watch btc-paper until its status shows equity other than the starting 100000."""
    watch = await asyncio.create_subprocess_exec(
        kubectl,
        "--kubeconfig",
        str(kubeconfig),
        "get",
        "tradingengine",
        "btc-paper",
        "--watch",
        "-o",
        'jsonpath={.status.equity}{"\\n"}',
        stdout=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    try:
        while line := await watch.stdout.readline():
            equity = line.decode().strip()
            if equity not in ("", "100000"):
                return equity
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    raise AssertionError("watch ended")
