"""A live engine behind the real gate: a signed LiveApproval read from a directory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from live_support import API_KEY, LiveRun, live_spec, make_sim, run_live, until

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.app.approval_gate import ApprovalGate
from hean_engine.app.run import RunOptions, serve
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval
from hean_engine.model.errors import LiveTradingRefused
from hean_engine.model.orders import RiskState

IDENTITY = EngineIdentity(name="live-test", namespace="default", generation=1, uid="uid-1")
KEY = Ed25519PrivateKey.generate()


def approval_dir(tmp_path: Path, spec: TradingEngineSpec, *, ttl: timedelta) -> Path:
    # Signed for the wall clock: the live harness runs on real time (ccxt signs with it).
    approval = new_approval(
        namespace=IDENTITY.namespace,
        engine=IDENTITY.name,
        engine_uid=IDENTITY.uid,
        spec=spec,
        ttl=ttl,
        now=datetime.now(UTC) - timedelta(minutes=1),
    )
    directory = tmp_path / "approval"
    (directory / "trust").mkdir(parents=True)
    (directory / "approval.yaml").write_text(
        yaml.safe_dump(approval_manifest(add_signature(approval, "ops", KEY)))
    )
    public = KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (directory / "trust" / "ops.pub").write_bytes(public)
    return directory


async def test_a_live_engine_with_a_valid_approval_trades_until_it_is_revoked(
    tmp_path: Path,
) -> None:
    sim = await make_sim(tmp_path)
    spec = live_spec(sim.url)
    directory = approval_dir(tmp_path, spec, ttl=timedelta(hours=1))
    run = LiveRun(sim, spec, tmp_path / "journal")
    seen: dict[str, object] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= 2, "two fills")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{run.port}/status") as response:
                seen["status"] = await response.json()
            async with http.get(f"http://127.0.0.1:{run.port}/metrics") as response:
                seen["metrics"] = await response.text()
        (directory / "trust" / "policy.yaml").write_text("revoked: [ops]\n")
        await until(lambda: kernel.risk.state is RiskState.HALTED, "the halt")
        seen["reason"] = kernel.risk.state_reason

    try:
        runtime = await run_live(
            run, during, identity=IDENTITY, gate=ApprovalGate(directory),
            approval_recheck_seconds=0.05,
        )  # fmt: skip
    finally:
        await sim.stop()
    status = seen["status"]
    assert isinstance(status, dict)
    assert status["approval"]["valid"] is True and status["approval"]["keyIds"] == ["ops"]
    assert 'hean_engine_approval_valid{engine="live-test",engine_namespace="default"} 1.0' in str(
        seen["metrics"]
    )
    assert seen["reason"] == "approval: revoked_key"
    assert runtime.approval is not None and runtime.approval.reason == "revoked_key"
    assert not runtime.kernel.open
    lost = [line for line in run.log_lines() if line.get("event") == "live approval lost"]
    assert lost and lost[0]["reason"] == "revoked_key"


@pytest.mark.parametrize("change", ["expired", "spec"])
async def test_a_live_engine_without_a_valid_approval_never_starts(
    tmp_path: Path, change: str
) -> None:
    sim = await make_sim(tmp_path)
    spec = live_spec(sim.url)
    signed_spec = live_spec(sim.url, risk={"maxOrderNotional": "1"}) if change == "spec" else spec
    ttl = timedelta(seconds=30) if change == "expired" else timedelta(hours=1)
    directory = approval_dir(tmp_path, signed_spec, ttl=ttl)
    options = RunOptions(
        gate=ApprovalGate(directory), journal_dir=tmp_path / "journal", configure_logs=False
    )
    try:
        with pytest.raises(LiveTradingRefused) as info:
            # No client: one would be made with the keys, and the gate comes first.
            await serve(IDENTITY, spec, options, stop=asyncio.Event())
    finally:
        await sim.stop()
    reason = "expired" if change == "expired" else "spec_changed"
    assert f"live trading refused for default/live-test: {reason}: " in str(info.value)
    assert not (tmp_path / "journal").exists()
    assert sim.orders(API_KEY) == []
