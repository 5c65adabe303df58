"""Every manifest under examples/ applies cleanly and the operator accepts it as valid.

A Backtest example is checked by the API server alone (a server-side dry run:
its CRD's schema and rules), since running it needs its recorded data volume."""

from __future__ import annotations

from pathlib import Path

import yaml
from scenario_support import make_sandbox_scenario, stop_recording

from engine_support import EXAMPLES_DIR


async def test_every_example_applies_and_is_valid(tmp_path: Path) -> None:
    # fake pods: engines whose examples point at the internet need not run here
    scenario, recorder = await make_sandbox_scenario(tmp_path, fake_pods=True, exchange=False)
    try:
        examples = sorted(EXAMPLES_DIR.glob("*.yaml"))
        assert len(examples) >= 3
        names = []
        for path in examples:
            manifest = yaml.safe_load(path.read_text())
            # into the scenario's namespace (the examples name `default`)
            manifest["metadata"].pop("namespace", None)
            if manifest["kind"] == "Backtest":
                await scenario.kubectl(
                    "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(manifest)
                )
                continue
            assert manifest["kind"] == "TradingEngine", path
            await scenario.apply(manifest)
            names.append(manifest["metadata"]["name"])
        # (paper-engine.yaml and sandbox-paper-engine.yaml are one engine, btc-paper,
        # for two places: the second apply updates the first)
        for name in sorted(set(names)):
            await scenario.wait(f"tradingengine/{name}", "condition=SpecValid")
            engine = await scenario.get("tradingengine", name)
            valid = next(c for c in engine["status"]["conditions"] if c["type"] == "SpecValid")
            assert valid["status"] == "True", (name, valid)
            assert engine["status"]["phase"] != "Invalid"
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()
