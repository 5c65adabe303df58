"""Every manifest under examples/ applies cleanly and the operator accepts it as valid."""

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
            assert manifest["kind"] == "TradingEngine", path
            # into the scenario's namespace (the examples name `default`)
            manifest["metadata"].pop("namespace", None)
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
