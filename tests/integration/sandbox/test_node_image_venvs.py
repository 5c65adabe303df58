"""The sandbox's node runs a user's image as a virtual environment, and reports a
container's termination message as the kubelet does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from node_support import NodeWorld

from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, write_lines
from strategy_support import RSI_EXAMPLE, venv_with_project

IMAGE = "registry.example.com/quant/hean-rsi"


def _host_has_termination_log() -> bool:
    return Path("/dev/termination-log").exists()


def _engine_pod(name: str, config: Path, data: Path) -> dict[str, Any]:
    command = ["hean", "engine", "replay", "--config", str(config), "--data", str(data)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": f"{IMAGE}:1.0",
                    "command": command,
                    "env": [
                        {"name": "HEAN_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"}
                    ],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }


def _config(tmp_path: Path, **params: Any) -> Path:
    manifest = yaml.safe_load((RSI_EXAMPLE / "replay-btcusd.yaml").read_text(encoding="utf-8"))
    manifest["spec"]["strategy"]["params"].update(params)
    path = tmp_path / f"engine-{len(params)}.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


async def _finished(world: NodeWorld, manifest: dict[str, Any]) -> dict[str, Any]:
    name = manifest["metadata"]["name"]
    watch = await world.watch_pod(name)
    try:
        await world.create_pod(manifest)
        event = await watch.until(
            lambda e: (e["object"].get("status") or {}).get("phase") in ("Succeeded", "Failed"),
            within=60,
        )
    finally:
        watch.close()
    status: dict[str, Any] = event["object"]["status"]
    return status


async def test_a_mapped_image_runs_its_venv_and_a_refusal_is_its_termination_message(
    world: NodeWorld, tmp_path: Path
) -> None:
    world.node.image_venvs[IMAGE] = venv_with_project(RSI_EXAMPLE, tmp_path)
    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 500)
    )
    status = await _finished(world, _engine_pod("rsi-ok", _config(tmp_path), data))
    assert status["phase"] == "Succeeded"
    [directory] = (world.node.workdir / world.namespace).glob("rsi-ok-*")
    log = (directory / "logs" / "main.log").read_text()
    assert "rsi_mean_reversion on BTC/USD" in log

    status = await _finished(world, _engine_pod("rsi-bad", _config(tmp_path, period=1), data))
    assert status["phase"] == "Failed"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 2
    assert terminated["message"] == (
        "invalid configuration:\n"
        "  spec.strategy.params.period: Input should be greater than or equal to 2"
    )
    assert not _host_has_termination_log()  # the pod's own file was written, not the host's


async def test_an_unmapped_user_image_is_still_an_image_pull_error(world: NodeWorld) -> None:
    manifest = _engine_pod("rsi-unmapped", Path("/nonexistent"), Path("/nonexistent"))
    watch = await world.watch_pod("rsi-unmapped")
    try:
        await world.create_pod(manifest)
        event = await watch.until(
            lambda e: (
                "ImagePullBackOff"
                in str((e["object"].get("status") or {}).get("containerStatuses"))
            ),
            within=30,
        )
    finally:
        watch.close()
    [container] = event["object"]["status"]["containerStatuses"]
    assert "--image-venv IMAGE=VENV" in container["state"]["waiting"]["message"]
