"""Loading an engine's configuration file (a TradingEngine manifest or its bare spec).

The file is read strictly (`model.yamltext`): UTF-8 only, no duplicate keys,
no value whose meaning differs between YAML 1.1 and 1.2, floats kept exact.
"""

from __future__ import annotations

from pathlib import Path

from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_manifest
from hean_engine.model.errors import ConfigError
from hean_engine.model.yamltext import load_documents, read_text


def load_config(path: Path | str) -> tuple[EngineIdentity, TradingEngineSpec]:
    path = Path(path)
    text = read_text(path, "--config")
    documents = load_documents(text, f"--config: {path}")
    if len(documents) != 1:
        raise ConfigError(
            [f"--config: {path} must hold exactly one document, found {len(documents)}"]
        )
    return parse_manifest(documents[0])
