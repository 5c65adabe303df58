"""The README's first command, as a newcomer runs it (after the install part)."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
from pathlib import Path

import aiohttp

from engine_support import REPO_ROOT, hean_executable


def readme_main_command() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    first = block.splitlines()[0]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    command = shlex.split(first.rsplit(" && ", 1)[1])
    assert command[:3] == [".venv/bin/hean", "sandbox", "up"]
    return [hean_executable(), *command[1:]]


async def test_readme_sandbox_shows_a_running_engine_with_moving_equity(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    # The README's command, with its state written under tmp_path instead of .hean/
    command = [
        *readme_main_command(),
        "--kubeconfig",
        str(kubeconfig),
        "--workdir",
        str(tmp_path / "sandbox"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            assert line, "".join(output)
            output.append(line)
            if line.startswith("try:"):
                break
        assert any("tradingengine.hean.io/btc-paper created" in line for line in output)
        wait = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "wait",
            "--for=condition=Ready",
            "tradingengine/btc-paper",
            "--timeout=60s",
        )
        assert await wait.wait() == 0
        server = next(line.split()[-1] for line in output if line.startswith("sandbox API"))
        url = f"{server}/apis/hean.io/v1alpha1/namespaces/default/tradingengines"
        moved = await asyncio.wait_for(_equity_moves(url), 120)
        assert moved["phase"] == "Running"
        table = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "tradingengines",
            stdout=asyncio.subprocess.PIPE,
        )
        shown, _ = await table.communicate()
        row = shown.decode().splitlines()[1].split()
        assert row[:5] == ["btc-paper", "paper", "Running", "ACTIVE", "True"]
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, rest.decode()
        assert "stopping the sandbox" in rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _equity_moves(url: str) -> dict[str, object]:
    """Watch btc-paper until its status shows equity other than the starting 100000."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    params = {"watch": "true", "resourceVersion": "0", "fieldSelector": "metadata.name=btc-paper"}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, params=params) as response,
    ):
        async for line in response.content:
            status = json.loads(line)["object"].get("status") or {}
            if status.get("equity") not in (None, "100000"):
                return dict(status)
    raise AssertionError("watch ended")
