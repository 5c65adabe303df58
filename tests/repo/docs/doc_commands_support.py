"""Helpers of the docs tests: every shell command in the docs, and how each is run.

`doc_commands()` extracts every command line from the fenced ```bash, ```sh,
```shell and ```console blocks of README.md and docs/**/*.md (console blocks:
the `$ ` lines). A line continued with `\\` is one command, and `a && b` is two.

Each command gets the first rule (`RULES` in test_doc_commands.py) whose
pattern matches it, of one of these kinds:

- `local`: run here with bash, in a mirror of the repository (below);
- `helm`: run here with the helm binary of tests/repo/chart/chart_support.py;
- `sandbox-up`: the sandbox itself, started once in the background;
- `sandbox`: run with bash against that sandbox, in document order
  (getting-started's walkthrough first), with the runbooks' stand-in names
  `NS`/`ENGINE`/`OP_NS` replaced by the sandbox's `default`/`btc-paper`/
  `hean-system`;
- `allowed`: not runnable here (Docker, kind, a registry, a real cluster, the
  internet): the rule's reason says why.

The mirror: commands run as the docs write them, from a directory under
tmp_path that links `.venv`, `charts`, `crds`, `docs` and `examples` to the
repository and `../shared` to the shared data, so that relative paths work and
the sandbox's state (`.hean/`) and anything a command writes stay in tmp_path.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine_support import REPO_ROOT, SHARED_DATA_DIR

_CHART_TESTS = Path(__file__).resolve().parents[1] / "chart"
if str(_CHART_TESTS) not in sys.path:  # tests/repo/chart is on sys.path only when collected
    sys.path.insert(0, str(_CHART_TESTS))
from chart_support import Helm as Helm  # noqa: E402  (re-exported for the tests)
from chart_support import find_helm as find_helm  # noqa: E402

LANGUAGES = ("bash", "sh", "shell", "console")
MIRRORED = (".venv", "charts", "crds", "docs", "examples")
SANDBOX_ENGINE = {"NS": "default", "ENGINE": "btc-paper", "OP_NS": "hean-system"}
COMMAND_TIMEOUT = 90  # seconds; `kubectl wait` commands carry their own, shorter timeouts


def doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class DocCommand:
    file: str  # relative to the repository
    line: int  # 1-based line of the command's first line
    text: str  # the command, continuations joined, trailing comment removed

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def strip_comment(line: str) -> str:
    """`line` without a trailing `# comment` (outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def split_and(command: str) -> list[str]:
    """`a && b` -> [a, b] (outside quotes and `$(...)`)."""
    parts, start, quote, depth, i = [], 0, "", 0, 0
    while i < len(command):
        char = command[i]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif command.startswith("$(", i):
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif command.startswith("&&", i) and not depth:
            parts.append(command[start:i].strip())
            start = i + 2
            i += 1
        i += 1
    parts.append(command[start:].strip())
    return [p for p in parts if p]


def _block_commands(lines: list[tuple[int, str]], console: bool) -> Iterator[tuple[int, str]]:
    pending: list[str] = []
    first = 0
    for number, raw in lines:
        line = raw.rstrip()
        if not pending:
            if console:
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = number
        if line.endswith("\\"):
            pending.append(line[:-1].rstrip())
            continue
        pending.append(line.strip() if pending else line)
        text = strip_comment(" ".join(p.strip() for p in pending))
        pending = []
        if text:
            yield first, text


def doc_commands() -> list[DocCommand]:
    return [command for path in doc_files() for command in commands_in(path)]


def commands_in(path: Path, root: Path = REPO_ROOT) -> list[DocCommand]:
    """Commands of shell blocks only: a fence of another language is skipped whole."""
    relative = path.relative_to(root).as_posix()
    found: list[DocCommand] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith("```"):
            i += 1
            continue
        fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
        language = stripped[len(fence) :].strip().split(" ")[0].lower()
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)), None
        )
        assert end is not None, f"{relative}:{i + 1}: unterminated code block"
        if language in LANGUAGES:
            block = [(j + 1, lines[j]) for j in range(i + 1, end)]
            for first, text in _block_commands(block, language == "console"):
                found += [DocCommand(relative, first, part) for part in split_and(text)]
        i = end + 1
    return found


@dataclass(frozen=True)
class Rule:
    """How the docs test handles the commands that `pattern` matches (re.fullmatch)."""

    pattern: str
    kind: str  # local, helm, sandbox-up, sandbox, allowed
    reason: str  # why it runs the way it does, or why it cannot run here
    append: str = ""  # arguments the test adds (a dry run)

    def matches(self, command: str) -> bool:
        return re.fullmatch(self.pattern, command) is not None


# -- running ------------------------------------------------------------------------


def make_mirror(root: Path) -> Path:
    """A working directory like the repository's, for commands run as the docs write them."""
    work = root / "work"
    work.mkdir(parents=True)
    for name in MIRRORED:
        (work / name).symlink_to(REPO_ROOT / name)
    (root / "shared").symlink_to(SHARED_DATA_DIR.parent)
    return work


def base_env(work: Path) -> dict[str, str]:
    venv_bin = str(REPO_ROOT / ".venv" / "bin")
    path = os.environ.get("PATH", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HELM_"))}
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{path}",
            "KUBECONFIG": str(work / ".hean" / "no-cluster-kubeconfig"),
            "PWD": str(work),
        }
    )
    return env


def helm_env(helm: Helm, env: dict[str, str], bin_dir: Path) -> dict[str, str]:
    """`env` where `helm` is chart_support's binary, with its offline settings."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "helm"
    if not link.exists():
        link.symlink_to(helm.binary)
    out = dict(env)
    out.update({k: v for k, v in helm.env.items() if k != "PATH"})
    out["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return out


def substitute(command: str) -> str:
    """The runbooks' stand-in names -> the sandbox's (SANDBOX_ENGINE); `[--flag]` dropped."""
    for name, value in SANDBOX_ENGINE.items():
        command = re.sub(rf"\b{name}\b", value, command)
    return re.sub(r" \[--[a-z-]+\]", "", command)


@dataclass
class Outcome:
    command: str
    returncode: int
    stdout: str
    stderr: str
    statuses: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"$ {self.command}\nexit statuses {self.statuses} (bash {self.returncode}) "
            f"after {self.seconds:.1f}s\n--- stdout\n{self.stdout[-3000:]}\n"
            f"--- stderr\n{self.stderr[-3000:]}"
        )


_STATUS_MARK = "__hean_doc_statuses__"


def run_shell(
    command: str, cwd: Path, env: dict[str, str], *, value_file: Path | None = None
) -> Outcome:
    """Run `command` with bash (pipefail), recording every pipeline stage's status.

    With `value_file`, the command is an assignment (`VAR=...`, `export VAR=...`)
    and the variable's value is written there, for the commands that follow.
    """
    script = f'set -o pipefail\n{command}\nprintf "\\n{_STATUS_MARK} %s\\n" "${{PIPESTATUS[*]}}"'
    name = assignment(command)
    if value_file is not None and name is not None:
        script += f'\nprintf "%s" "${{{name}-}}" > {shlex.quote(str(value_file))}'
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    stdout, found, mark = done.stdout.rpartition(f"\n{_STATUS_MARK} ")
    if not found:  # the script stopped before the marker (e.g. `exit`)
        stdout, mark = done.stdout, ""
    return Outcome(
        command,
        done.returncode,
        stdout,
        done.stderr,
        [int(s) for s in mark.split()],
        time.monotonic() - started,
    )


def succeeded(outcome: Outcome) -> bool:
    """Every pipeline stage exited 0, except a final `grep` that may find nothing (1)."""
    if outcome.returncode not in (0, 1) or not outcome.statuses:
        return False
    *head, last = outcome.statuses
    stages = pipeline_stages(outcome.command)
    last_is_grep = len(stages) > 1 and stages[-1].split()[0] == "grep"
    return all(s == 0 for s in head) and (last == 0 or (last == 1 and last_is_grep))


def pipeline_stages(command: str) -> list[str]:
    """The top-level stages of a pipeline (outside quotes and `$(...)`)."""
    stages, start, quote, depth = [], 0, "", 0
    for i, char in enumerate(command):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif command.startswith("$(", i):
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == "|" and not depth and command[i + 1 : i + 2] != "|" and command[i - 1] != "|":
            stages.append(command[start:i].strip())
            start = i + 1
    stages.append(command[start:].strip())
    return stages


def assignment(command: str) -> str | None:
    """The variable a `VAR=...` or `export VAR=...` command sets, if it is one."""
    match = re.fullmatch(r"(?:export )?([A-Z_][A-Z0-9_]*)=.+", command)
    return match.group(1) if match else None


# -- the sandbox process ------------------------------------------------------------


class SandboxProcess:
    """`hean sandbox up ...` as the docs write it, in the background, output collected."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            shlex.split(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped as one below
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("try:"):
                self.ready.set()
        self.ready.set()  # ended: waiters see the exit instead of hanging

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.process.poll() is not None:
            raise AssertionError(f"the sandbox did not come up within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as the docs say; the process group is killed only if that fails."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                return -signal.SIGKILL
        self._reader.join(5)
        return self.process.returncode
