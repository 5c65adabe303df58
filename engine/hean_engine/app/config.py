"""Loading an engine's configuration file (a TradingEngine manifest or its bare spec)."""

from __future__ import annotations

from pathlib import Path

import yaml

from hean_engine.model.errors import ConfigError
from hean_engine.model.spec import EngineIdentity, TradingEngineSpec, parse_manifest


def load_config(path: Path | str) -> tuple[EngineIdentity, TradingEngineSpec]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"--config: cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ConfigError([f"--config: {path} is not valid YAML: {exc}"]) from None
    if len(documents) != 1:
        raise ConfigError(
            [f"--config: {path} must hold exactly one document, found {len(documents)}"]
        )
    return parse_manifest(documents[0])
