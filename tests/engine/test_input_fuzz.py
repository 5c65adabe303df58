"""Issue 14: fuzzing the three ways bad input gets in, asserting "a clear error or a valid
result, never a traceback":

- the config loader (`load_config`): random bytes, random YAML documents, and a valid
  config with a random slice replaced;
- the approval loader: the engine's gate over a random `approval.yaml` (a verdict, never
  an exception) and the trust directory's `policy.yaml` (a policy or a ConfigError);
- the control API's request parsing: random bodies and Authorization headers against the
  real aiohttp app (4xx/2xx with a JSON body, never a 500).

Derandomized (the same cases every run); `CASES` counts what ran, per target.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_support import build_scripted_engine, manifest_dict, spec_dict
from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_engine.app.approval_gate import ApprovalGate
from hean_engine.app.config import load_config
from hean_engine.approval.trust import TrustPolicy, trust_from_files
from hean_engine.approval.verify import Verdict
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import build_app
from hean_engine.model.errors import ConfigError

CASES: Counter[str] = Counter()
FUZZ = settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKEN = "fuzz-control-token-5e8a"
VALID_CONFIG = yaml.safe_dump(manifest_dict(spec_dict(), name="fuzz"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["010", "1:30", "yes", "on", "0.12345678901234567890", "1e3", "~", "&a", "*a"]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _yaml_texts() -> st.SearchStrategy[bytes]:
    dumped = documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8"))
    spliced = st.tuples(
        st.integers(0, len(VALID_CONFIG)), st.integers(0, 40), st.text(max_size=30)
    ).map(lambda t: (VALID_CONFIG[: t[0]] + t[2] + VALID_CONFIG[t[0] + t[1] :]).encode("utf-8"))
    return st.one_of(
        st.binary(max_size=300), dumped, spliced, st.text(max_size=300).map(str.encode)
    )


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\nfuzz cases run: {dict(CASES)}")


@FUZZ
@given(content=_yaml_texts())
def test_fuzz_config_loader_clear_error_or_valid(tmp_path: Path, content: bytes) -> None:
    CASES["config"] += 1
    path = tmp_path / "engine.yaml"
    path.write_bytes(content)
    try:
        identity, spec = load_config(path)
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert isinstance(identity, EngineIdentity) and isinstance(spec, TradingEngineSpec)
        return
    assert problems and all(isinstance(p, str) and p for p in problems)


@FUZZ
@given(content=_yaml_texts(), policy=_yaml_texts())
def test_fuzz_approval_loader_clear_error_or_valid(
    tmp_path: Path, content: bytes, policy: bytes
) -> None:
    CASES["approval"] += 1
    directory = tmp_path / "approval"
    (directory / "trust").mkdir(parents=True, exist_ok=True)
    (directory / "approval.yaml").write_bytes(content)
    spec = parse_spec(spec_dict(mode="live", exchange={"id": "binance", "credentialsSecret": "k"}))
    verdict = ApprovalGate(directory).verdict(EngineIdentity(uid="u"), spec)
    assert isinstance(verdict, Verdict) and not verdict.valid and verdict.message
    try:
        text = policy.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        trusted = trust_from_files({"policy.yaml": text})
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert isinstance(trusted, TrustPolicy)
        return
    assert problems


@pytest.fixture(scope="module")
def control() -> Iterator[tuple[asyncio.AbstractEventLoop, TestClient]]:
    loop = asyncio.new_event_loop()
    engine, _ = build_scripted_engine()
    runtime = Runtime(
        identity=engine.identity, spec=engine.spec, kernel=engine.kernel, mode="paper", run_id="f"
    )
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text(TOKEN)
        client = TestClient(TestServer(build_app(runtime, token_file)), loop=loop)
        loop.run_until_complete(client.start_server())
        try:
            yield loop, client
        finally:
            loop.run_until_complete(client.close())
            loop.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["pause", "resume", "halt", "reduce", "reset-halt", "x"]).map(
        lambda c: json.dumps({"command": c}).encode()
    ),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
headers = st.one_of(
    st.just(f"Bearer {TOKEN}"),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
        max_size=40,
    ),
)


@FUZZ
@given(body=bodies, authorization=headers)
def test_fuzz_control_api_requests_are_never_a_500(
    control: tuple[asyncio.AbstractEventLoop, TestClient], body: bytes, authorization: str
) -> None:
    CASES["control"] += 1
    loop, client = control

    async def send() -> tuple[int, Any]:
        response = await client.post(
            "/control",
            data=body,
            headers={"Authorization": authorization.encode("utf-8").decode("latin-1")},
        )
        return response.status, await response.json()

    status, answer = loop.run_until_complete(send())
    assert status in (200, 400, 401, 403), (status, answer)
    assert isinstance(answer, dict)
    assert ("error" in answer) == (status != 200)
