"""Every shell command in the docs is run by a test, or allowlisted with a reason.

The commands come from the fenced bash/sh/shell/console blocks of README.md and
docs/**/*.md; `doc_commands_support.RULES` says, for each, how it is run (or
why it cannot be). Commands that need no cluster run one by one
(`test_command_runs_here`); the kubectl commands run in document order
against one sandbox started exactly as getting-started.md says
(`test_sandbox_walkthrough`).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from doc_commands_support import (
    DocCommand,
    Helm,
    Outcome,
    Rule,
    SandboxProcess,
    assignment,
    base_env,
    commands_in,
    doc_commands,
    find_helm,
    helm_env,
    make_mirror,
    pipeline_stages,
    run_shell,
    substitute,
    succeeded,
)

# -- how each command in the docs is run, or why it cannot be ---------------------

_HEAN = r"(\.venv/bin/)?hean"
_PORT_FORWARD = (
    "the engine's HTTP API through `kubectl port-forward`, which the sandbox does not "
    "emulate: needs a real cluster"
)

RULES: list[Rule] = [
    # run here, no cluster needed
    Rule(rf"{_HEAN}( [a-z]+)* (-h|--help)", "local", "help text"),
    Rule(
        rf"{_HEAN} approval .*|mkdir -p trust|cp keys/\S+\.pub( keys/\S+\.pub)* trust/"
        r"|rm trust/\S+\.pub|printf '[^']*' > trust/policy\.yaml",
        "allowed",
        "the LiveApproval walkthrough: each step needs the files of the steps before it; "
        "tests/engine/approval/test_security_doc.py runs them all, in order, in one directory",
    ),
    Rule(rf"{_HEAN} crds (generate|reference) --out \S+ --check", "local", "drift check"),
    Rule(
        rf"{_HEAN} engine replay --config examples/strategies/hean-rsi/\S+ .*",
        "allowed",
        "needs the example strategy package installed; tests/engine/test_example_strategy.py "
        "installs it into a throwaway directory and runs this replay",
    ),
    Rule(
        r"pip install \./examples/strategies/hean-rsi",
        "allowed",
        "installs into the reader's environment, with its build backend from the package "
        "index; the tests install the package into throwaway directories",
    ),
    Rule(rf"{_HEAN} engine replay .*", "local", "replays the shared recorded data"),
    Rule(rf"{_HEAN} engine backtest .*", "local", "one Backtest run over the shared data"),
    Rule(
        r"helm (lint charts/hean|template hean charts/hean)( .*)?",
        "helm",
        "renders the chart offline",
    ),
    Rule(
        r"helm install hean charts/hean .*",
        "helm",
        "no cluster here: a client-side dry run renders and validates the chart with the "
        "command's own arguments",
        append=" --dry-run=client",
    ),
    # the sandbox, and kubectl against it
    Rule(rf"{_HEAN} sandbox up .*", "sandbox-up", "started once, in the background"),
    Rule(r"export KUBECONFIG=\S+", "sandbox", "points kubectl at the sandbox"),
    Rule(r"export PATH=\S+", "sandbox", "puts the sandbox's kubectl and helm first on PATH"),
    Rule(
        r"kubectl apply -f examples/paper-engine\.yaml",
        "sandbox",
        "its engine needs Binance's public API (the internet): a server-side dry run "
        "against the sandbox checks the manifest against the CRD",
        append=" --dry-run=server",
    ),
    Rule(
        r"kubectl -n OP_NS logs deploy/hean --previous .*",
        "allowed",
        "needs an operator container that has restarted; the sandbox's has not",
    ),
    Rule(
        r"kubectl -n OP_NS get servicemonitor,.*",
        "allowed",
        "ServiceMonitor is the Prometheus Operator's CRD, which the sandbox does not install",
    ),
    Rule(r"kubectl -n OP_NS .*", "sandbox", "the operator's Deployment in the sandbox"),
    Rule(r"helm -n hean-system list", "sandbox", "the sandbox's Helm release"),
    Rule(r"kubectl -n NS port-forward pod/ENGINE-engine 8080:8080 &", "allowed", _PORT_FORWARD),
    Rule(r"curl .*localhost:8080/.*", "allowed", _PORT_FORWARD),
    Rule(r"kubectl .*", "sandbox", "runs against the sandbox"),
    Rule(r"\.hean/bin/kubectl .*", "sandbox", "the kubectl the sandbox built, against it"),
    Rule(r"[A-Z_]+=\$\(kubectl .*\)", "sandbox", "runs against the sandbox"),
    # not runnable here
    Rule(r"python3 -m venv \.venv", "allowed", "would replace the virtualenv running the tests"),
    Rule(
        r"\.venv/bin/pip install .*",
        "allowed",
        "installs from the Python package index (a registry, over the internet)",
    ),
    Rule(r"\.venv/bin/pytest", "allowed", "runs the whole test suite, this test included"),
    Rule(
        rf"{_HEAN} engine run --config examples/paper-engine\.yaml .*",
        "allowed",
        "paper trading on Binance's live public feed needs the internet (the walkthrough "
        "runs the same command as the sandbox's engine pod, against the exchange simulator)",
    ),
    Rule(
        rf"{_HEAN} sim exchange (--protocol [a-z]+ )?--port .*",
        "allowed",
        "serves until stopped: tests/sim/test_sim_cli.py starts every `hean sim exchange` "
        "command of docs/exchange-simulator.md, trades against it with ccxt and stops it",
    ),
    Rule(
        rf"{_HEAN} engine run --config sim-live-engine\.yaml .*",
        "allowed",
        "a live engine needs a signed LiveApproval for its uid and spec (--approval-dir); "
        "tests/integration/live runs the live path against the exchange simulator, with approvals "
        "(test_live_approval.py) and with a gate that allows",
    ),
    Rule(r"kind (create|delete) cluster --name hean", "allowed", "needs Docker and kind"),
    Rule(r"kind load docker-image --name hean .*", "allowed", "needs Docker and kind"),
    Rule(
        r"make images",
        "allowed",
        "docker build of both images: needs Docker (and the base image from a registry)",
    ),
    Rule(r"make kind-up", "allowed", "needs Docker, kind and Tilt"),
    Rule(
        r"helm (upgrade hean charts/hean|uninstall hean) -n hean-system",
        "allowed",
        "changes the release the rest of the walkthrough uses; tests/integration/cluster runs helm "
        "install, upgrade and uninstall of the chart on the real control plane",
    ),
    Rule(
        r"helm test (hean -n hean-system|RELEASE -n OP_NS)",
        "allowed",
        "the test pod calls the operator through its Service's DNS name, and the sandbox "
        "has no cluster DNS or Service routing",
    ),
]


def rule_for(command: DocCommand) -> Rule | None:
    return next((rule for rule in RULES if rule.matches(command.text)), None)


COMMANDS = doc_commands()
GETTING_STARTED = "docs/getting-started.md"
SANDBOX_UP_TIMEOUT = 120
POD_READY_TIMEOUT = 90


def _of_kind(*kinds: str) -> list[DocCommand]:
    return [c for c in COMMANDS if (rule := rule_for(c)) is not None and rule.kind in kinds]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """chart_support's helm, extracted once into pytest's cache as tests/repo/chart do."""
    found = find_helm()
    if found is None:
        pytest.fail("no helm binary: `hean sandbox build` builds it from cluster/ (needs Go)")
    return Helm(found, tmp_path_factory.mktemp("docs-helm-home"))


# -- every command has a rule -----------------------------------------------------


def test_the_docs_have_commands() -> None:
    files = {c.file for c in COMMANDS}
    assert {"README.md", GETTING_STARTED, "docs/operations.md"} <= files, files
    assert len(COMMANDS) > 30


def test_commands_are_read_as_a_shell_reads_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text `kubectl inline` is not a command\n"
        "```yaml\nkind: NotShell\n```\n"
        "```bash\n"
        "# a comment\n"
        "a --flag 'x # y' # trailing\n"
        "b one \\\n"
        '  two && c "&&" $(d && e)\n'
        "```\n"
        "````console\n"
        "$ f | grep g\n"
        "output line\n"
        "````\n"
    )
    found = [(c.line, c.text) for c in commands_in(page, tmp_path)]
    assert found == [
        (7, "a --flag 'x # y'"),
        (8, "b one two"),
        (8, 'c "&&" $(d && e)'),
        (12, "f | grep g"),
    ]
    assert pipeline_stages("a '|' | b $(c | d) || e") == ["a '|'", "b $(c | d) || e"]


def test_a_final_grep_may_find_nothing_but_nothing_else_may_fail(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert succeeded(run_shell("true | grep -q nothing", tmp_path, env))
    assert not succeeded(run_shell("false | grep -q nothing", tmp_path, env))
    assert not succeeded(run_shell("false | cat", tmp_path, env))
    assert not succeeded(run_shell("grep -q nothing /dev/null", tmp_path, env))
    assert not succeeded(run_shell("X=$(false | cat)", tmp_path, env))
    assert succeeded(run_shell("true", tmp_path, env))


def test_every_doc_command_is_run_or_allowlisted() -> None:
    unknown = [f"{c.where}: {c.text}" for c in COMMANDS if rule_for(c) is None]
    assert not unknown, (
        "commands in the docs that the docs test neither runs nor allowlists; add a rule "
        "to RULES in tests/repo/docs/test_doc_commands.py (a way to run it, or the reason "
        "it cannot run in a test):\n" + "\n".join(unknown)
    )


def test_every_allowlist_entry_is_used_and_has_a_reason() -> None:
    for rule in RULES:
        assert rule.reason.strip(), rule
        if rule.kind == "allowed":
            used = [c for c in COMMANDS if rule_for(c) is rule]
            assert used, f"allowlist entry {rule.pattern!r} matches no command in the docs"


def test_the_docs_start_one_sandbox_the_same_way() -> None:
    ups = _of_kind("sandbox-up")
    assert any(c.file == GETTING_STARTED for c in ups)
    assert any(c.file == "README.md" for c in ups)
    forms = {shlex.split(c.text)[0].rsplit("/", 1)[-1] + " " + c.text.split(" ", 1)[1] for c in ups}
    assert len(forms) == 1, f"the docs start the sandbox in different ways: {forms}"


# -- commands that need no cluster ------------------------------------------------


@pytest.mark.parametrize("command", _of_kind("local", "helm"), ids=lambda c: c.where)
def test_command_runs_here(command: DocCommand, tmp_path: Path, helm: Helm) -> None:
    rule = rule_for(command)
    assert rule is not None
    work = make_mirror(tmp_path)
    env = base_env(work)
    if rule.kind == "helm":
        env = helm_env(helm, env, tmp_path / "bin")
    outcome = run_shell(command.text + rule.append, work, env)
    assert succeeded(outcome), f"{command.where}\n{outcome.describe()}"


# -- the sandbox walkthrough ------------------------------------------------------


def _deletes_engines(command: DocCommand) -> bool:
    return re.match(r"kubectl( -n \S+)? delete (tradingengines?|te)\b", command.text) is not None


def walkthrough_order() -> list[DocCommand]:
    """getting-started.md in order, with the other pages' commands run while its engine exists.

    1. getting-started.md up to its `kubectl delete` (the engine runs);
    2. every other page's sandbox commands, in document order, except deletions of
       TradingEngines (runbooks need the engine);
    3. the rest of getting-started.md (deletion, and the kind section's kubectl);
    4. the other pages' deletions of TradingEngines.
    """
    commands = _of_kind("sandbox")
    guide = [c for c in commands if c.file == GETTING_STARTED]
    cut = next((i for i, c in enumerate(guide) if c.text.startswith("kubectl delete")), len(guide))
    others = [c for c in commands if c.file != GETTING_STARTED]
    return [
        *guide[:cut],
        *[c for c in others if not _deletes_engines(c)],
        *guide[cut:],
        *[c for c in others if _deletes_engines(c)],
    ]


def _kubectl_json(env: dict[str, str], work: Path, *args: str) -> dict[str, object] | None:
    done = subprocess.run(
        ["kubectl", *args, "-o", "json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def _wait_pod_ready(env: dict[str, str], work: Path, namespace: str, name: str) -> None:
    """After a doc deletes an engine pod: the operator recreates it; wait until it is Ready."""
    deadline = time.monotonic() + POD_READY_TIMEOUT
    while time.monotonic() < deadline:
        pod = _kubectl_json(env, work, "-n", namespace, "get", "pod", name)
        status = (pod or {}).get("status") or {}
        assert isinstance(status, dict)
        conditions = status.get("conditions") or []
        assert isinstance(conditions, list)
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.5)
    raise AssertionError(f"the operator did not recreate {namespace}/{name} (Ready)")


def _secret_token(env: dict[str, str], work: Path, namespace: str, name: str) -> str | None:
    secret = _kubectl_json(env, work, "-n", namespace, "get", "secret", name)
    data = (secret or {}).get("data") or {}
    assert isinstance(data, dict)
    token = data.get("token")
    return base64.b64decode(token).decode() if isinstance(token, str) else None


def test_sandbox_walkthrough(tmp_path: Path) -> None:
    """getting-started.md for real: the sandbox as written, then every kubectl command."""
    (up,) = {c.text: c for c in _of_kind("sandbox-up") if c.file == GETTING_STARTED}.values()
    work = make_mirror(tmp_path)
    env = base_env(work)
    # What getting-started's `export KUBECONFIG=$PWD/.hean/kubeconfig` sets, for pages
    # that assume it (the runbooks); the export itself runs below and must agree.
    env["KUBECONFIG"] = str(work / ".hean" / "kubeconfig")
    box = SandboxProcess(up.text, work, env)
    rotated: dict[tuple[str, str], str | None] = {}  # (namespace, secret) -> token before
    try:
        box.wait_ready(SANDBOX_UP_TIMEOUT)
        for command in walkthrough_order():
            rule = rule_for(command)
            assert rule is not None
            text = substitute(command.text) + rule.append
            secret = re.fullmatch(r"kubectl -n (\S+) delete secret (\S+)", text)
            if secret:
                key = (secret.group(1), secret.group(2))
                rotated[key] = _secret_token(env, work, *key)
            value_file = tmp_path / "value" if assignment(text) else None
            outcome = run_shell(text, work, env, value_file=value_file)
            _check(command, outcome, box)
            if value_file is not None:
                name = assignment(text)
                assert name is not None
                value = value_file.read_text()
                assert value, f"{command.where}: {name} is empty\n{outcome.describe()}"
                env[name] = value
            pod = re.fullmatch(r"kubectl -n (\S+) delete pod (\S+)", text)
            if pod:
                _wait_pod_ready(env, work, pod.group(1), pod.group(2))
                for key, before in rotated.items():
                    after = _secret_token(env, work, *key)
                    assert after and after != before, f"{key}: the token was not rotated"
        assert env["KUBECONFIG"] == str(work / ".hean" / "kubeconfig")
    finally:
        returncode = box.stop()
    assert returncode == 0, box.output()
    assert "stopping the sandbox" in box.output()


def _check(command: DocCommand, outcome: Outcome, box: SandboxProcess) -> None:
    assert succeeded(outcome), (
        f"{command.where}\n{outcome.describe()}\n--- the sandbox's output\n{box.output()}"
    )
