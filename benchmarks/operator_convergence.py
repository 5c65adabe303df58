"""Operator convergence benchmark: N TradingEngines applied at once, in fake-pods mode.

For each N, a fresh sandbox (`hean_sandbox.up.Sandbox` with `fake_pods=True`:
the apiserver emulator, the pod runner marking pods Running/Ready without
processes and a stand-in engine API per pod, `hean_sandbox.kubelet.fake_engine`)
runs HEAN's operator as its own process (`hean operator run --poll-interval S`).
N TradingEngines are POSTed to the apiserver concurrently, and the script
measures:

- time from the first create until every TradingEngine has
  `status.conditions[type=Ready].status == "True"` (seen on the apiserver's
  own change feed: no polling);
- API writes per engine create by the operator: creates, updates, patches
  and deletes of configmaps, secrets, services, pods and the tradingengines
  main resource (the benchmark's own TradingEngine creates and the pod
  runner's pod status patches excluded); `tradingengines/status` patches and
  Events are counted separately. Counted through a settle period after
  convergence (`--settle`, default 1.5 poll intervals) to catch trailing
  writes;
- operator RSS: VmRSS after convergence minus VmRSS of the idle operator
  (watching, zero engines) before the creates, per engine; VmHWM too.

Then, in a fresh sandbox of the same kind, the baseline: a bare kopf operator
(`benchmarks/baseline_kopf_operator.py`, same kopf, own process) that only
creates one pod per TradingEngine; its time is until all its pods are Ready.

Targets (from the issue): HEAN time <= 1.2x the baseline's, <= 3 writes per
create, <= 50 KiB operator RSS per engine.

    .venv/bin/python benchmarks/operator_convergence.py [--sizes 10,100,1000]
        [--poll-interval 2] [--json out.json] [--workdir DIR]

`--skip-emulator-gc` turns off the apiserver emulator's garbage collector for
the run: it scans every stored object after every write (O(objects) per
write), which at N=1000 (about 15,000 objects with the Events) saturates the
sandbox process, so that the figures measure the emulator, not the operator.
Nothing is deleted while the benchmark measures, so skipping it changes no
outcome.

Not pinned to a CPU: the operator and the sandbox are two processes and get
the machine's two cores between them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import yaml

from hean_sandbox.apiserver.store import AuditEntry, StoredEvent
from hean_sandbox.up import Sandbox, SandboxOptions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sandbox-paper-engine.yaml"
BASELINE = Path(__file__).resolve().with_name("baseline_kopf_operator.py")
TE_KEY = ("hean.io", "tradingengines")
POD_KEY = ("", "pods")
TE_PATH = "/apis/hean.io/v1alpha1/namespaces/default/tradingengines"
# The kinds whose writes count as "writes per create" (the figure).
CHILD_KINDS = ("configmaps", "secrets", "services", "pods", "tradingengines")
TARGET_RATIO = 1.2
TARGET_WRITES = 3.0
TARGET_RSS_KIB = 50.0


@dataclass
class RunResult:
    operator: str  # "hean" or "baseline"
    engines: int
    seconds: float | None  # first create -> all Ready; None: timed out
    ready: int
    create_seconds: float  # until all N POSTs were answered
    ready_p50: float | None
    ready_max: float | None
    writes_per_create: float
    status_patches_per_engine: float
    status_patches_at_ready: float
    events_per_engine: float
    writes: dict[str, int] = field(default_factory=dict)  # "verb resource" -> count (operator)
    kubelet_writes: dict[str, int] = field(default_factory=dict)
    # What the writes to the TradingEngines changed (kopf's and HEAN's), -> count.
    engine_changes: dict[str, int] = field(default_factory=dict)
    rss_idle_kib: int = 0
    rss_kib: int = 0
    hwm_kib: int = 0
    rss_per_engine_kib: float = 0.0


def _proc_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/{pid}/status")


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _manifests(n: int) -> list[dict[str, Any]]:
    template = yaml.safe_load(EXAMPLE.read_text())
    out = []
    for i in range(n):
        manifest = copy.deepcopy(template)
        manifest["metadata"] = {"name": f"bench-{i:05d}", "namespace": "default"}
        out.append(manifest)
    return out


class ReadyTracker:
    """Watches the store's change feed for Ready objects (TradingEngines or pods)."""

    def __init__(self, key: tuple[str, str], names: set[str]) -> None:
        self.key = key
        self.names = names
        self.t0 = 0.0
        self.ready_at: dict[str, float] = {}
        self.done = asyncio.Event()

    def __call__(self, event: StoredEvent) -> None:
        if event.key != self.key or event.type == "DELETED":
            return
        name = event.object["metadata"]["name"]
        if name in self.names and name not in self.ready_at and _ready(event.object):
            self.ready_at[name] = time.perf_counter()
            if len(self.ready_at) == len(self.names):
                self.done.set()


class ChangeLog:
    """What each write to a TradingEngine changed: finalizers, which annotations, or status."""

    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()

    def __call__(self, event: StoredEvent) -> None:
        if event.key != TE_KEY or event.type != "MODIFIED" or event.old is None:
            return
        self.changes[describe_change(event.old, event.object)] += 1


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = []
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    if before.get("finalizers") != after.get("finalizers"):
        parts.append(f"finalizers {before.get('finalizers') or []} -> {after.get('finalizers')}")
    ann_before = before.get("annotations") or {}
    ann_after = after.get("annotations") or {}
    marks = [f"+{k}" for k in sorted(set(ann_after) - set(ann_before))]
    marks += [f"-{k}" for k in sorted(set(ann_before) - set(ann_after))]
    marks += [
        f"~{k}" for k in sorted(set(ann_before) & set(ann_after)) if ann_before[k] != ann_after[k]
    ]
    if marks:
        parts.append("annotations " + " ".join(marks))
    if old.get("status") != new.get("status"):
        parts.append("status")
    return "; ".join(parts) or "no change"


def _classify(entries: list[AuditEntry], n_creates: int) -> tuple[Counter[str], Counter[str]]:
    """Split client writes into the operator's and the pod runner's (the kubelet's)."""
    operator: Counter[str] = Counter()
    kubelet: Counter[str] = Counter()
    driver_creates = 0
    for e in entries:
        if e.actor != "client":
            continue
        resource = f"{e.resource}/{e.subresource}" if e.subresource else e.resource
        label = f"{e.verb} {resource}"
        if label == "create tradingengines" and driver_creates < n_creates:
            driver_creates += 1  # the benchmark's own creates
        elif resource == "pods/status":
            kubelet[label] += 1  # the pod runner reports pods Running/Ready
        else:
            operator[label] += 1
    return operator, kubelet


async def _start_baseline(box: Sandbox) -> tuple[asyncio.subprocess.Process, IO[bytes]]:
    log = (box.options.workdir / "baseline.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BASELINE),
        "--kubeconfig",
        str(box.options.kubeconfig),
        env={**os.environ, "KUBECONFIG": str(box.options.kubeconfig)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    return process, log


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _create_all(url: str, manifests: list[dict[str, Any]]) -> None:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(manifest: dict[str, Any]) -> None:
            async with session.post(url + TE_PATH, json=manifest) as response:
                if response.status != 201:
                    text = await response.text()
                    raise RuntimeError(f"create answered {response.status}: {text}")

        await asyncio.gather(*(one(m) for m in manifests))


async def run_one(
    which: str,
    n: int,
    poll_interval: float,
    settle: float,
    within: float,
    workdir: Path,
    *,
    skip_gc: bool = False,
) -> RunResult:
    box = Sandbox(
        SandboxOptions(
            kubeconfig=workdir / "kubeconfig",
            workdir=workdir,
            fake_pods=True,
            operator=which == "hean",
            operator_args=("--poll-interval", str(poll_interval)),
        )
    )
    box.apiserver.store.history_size = 200_000  # no 410 Gone for a reconnecting watch
    if skip_gc:
        setattr(box.apiserver.api, "_garbage_collector", lambda: False)  # noqa: B010
    await box.start()
    baseline: asyncio.subprocess.Process | None = None
    baseline_log: IO[bytes] | None = None
    try:
        if which == "hean":
            assert box.operator is not None
            process = box.operator
        else:
            baseline, baseline_log = await _start_baseline(box)
            process = baseline
        await box.apiserver.wait_for_watchers(resource="tradingengines", within=120)
        await asyncio.sleep(1.0)  # let the idle operator finish starting before the idle RSS
        rss_idle = _proc_kib(process.pid, "VmRSS")

        manifests = _manifests(n)
        names = {m["metadata"]["name"] for m in manifests}
        if which == "hean":
            tracker = ReadyTracker(TE_KEY, names)
        else:
            tracker = ReadyTracker(POD_KEY, {f"{name}-engine" for name in names})
        store = box.apiserver.store
        changes = ChangeLog()
        store.subscribe(tracker)
        store.subscribe(changes)
        first_write = len(store.audit)
        tracker.t0 = time.perf_counter()
        await _create_all(box.apiserver.url, manifests)
        create_seconds = time.perf_counter() - tracker.t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.done.wait(), within)
        store.unsubscribe(tracker)
        converged = tracker.done.is_set()
        seconds = max(tracker.ready_at.values()) - tracker.t0 if converged else None
        rss = _proc_kib(process.pid, "VmRSS")
        hwm = _proc_kib(process.pid, "VmHWM")
        at_ready, _ = _classify(store.audit[first_write:], n)
        await asyncio.sleep(settle)  # trailing writes (annotations, a last status patch)
        operator_writes, kubelet_writes = _classify(store.audit[first_write:], n)
        store.unsubscribe(changes)
        times = sorted(t - tracker.t0 for t in tracker.ready_at.values())
        child_writes = sum(
            count
            for label, count in operator_writes.items()
            if label.split(" ", 1)[1] in CHILD_KINDS
        )
        return RunResult(
            operator=which,
            engines=n,
            seconds=seconds,
            ready=len(tracker.ready_at),
            create_seconds=create_seconds,
            ready_p50=statistics.median(times) if times else None,
            ready_max=times[-1] if times else None,
            writes_per_create=child_writes / n,
            status_patches_per_engine=operator_writes["patch tradingengines/status"] / n,
            status_patches_at_ready=at_ready["patch tradingengines/status"] / n,
            events_per_engine=operator_writes["create events"] / n,
            writes=dict(sorted(operator_writes.items())),
            kubelet_writes=dict(sorted(kubelet_writes.items())),
            engine_changes=dict(changes.changes.most_common()),
            rss_idle_kib=rss_idle,
            rss_kib=rss,
            hwm_kib=hwm,
            rss_per_engine_kib=(rss - rss_idle) / n,
        )
    finally:
        if baseline is not None:
            await _stop_process(baseline)
        if baseline_log is not None:
            baseline_log.close()
        await box.stop()


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "timeout" if value is None else format(value, spec)


def report(
    pairs: list[tuple[RunResult, RunResult]], poll_interval: float, skip_gc: bool = False
) -> str:
    gc_note = " (emulator GC off)" if skip_gc else ""
    lines = [
        f"poll interval {poll_interval:g} s{gc_note}; writes = creates/updates/patches/deletes of "
        "configmaps, secrets, services, pods, tradingengines (status patches and Events apart)",
        "",
        "| N | HEAN s | baseline s | ratio (<= 1.2) | writes/create (<= 3) | "
        "status patches/engine | Events/engine | RSS KiB/engine (<= 50) | "
        "baseline writes/create | baseline RSS KiB/engine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for hean, base in pairs:
        ratio = hean.seconds / base.seconds if hean.seconds and base.seconds else None
        ok_ratio = "met" if ratio is not None and ratio <= TARGET_RATIO else "missed"
        ok_writes = "met" if hean.writes_per_create <= TARGET_WRITES else "missed"
        ok_rss = "met" if hean.rss_per_engine_kib <= TARGET_RSS_KIB else "missed"
        lines.append(
            f"| {hean.engines} | {_fmt(hean.seconds)} | {_fmt(base.seconds)} | "
            f"{_fmt(ratio)} ({ok_ratio}) | {hean.writes_per_create:.2f} ({ok_writes}) | "
            f"{hean.status_patches_per_engine:.2f} | {hean.events_per_engine:.2f} | "
            f"{hean.rss_per_engine_kib:.1f} ({ok_rss}) | {base.writes_per_create:.2f} | "
            f"{base.rss_per_engine_kib:.1f} |"
        )
    lines.append("")
    for hean, base in pairs:
        for run in (hean, base):
            lines.append(
                f"{run.operator} N={run.engines}: ready {run.ready}/{run.engines}, "
                f"creates answered in {run.create_seconds:.2f} s, "
                f"Ready p50 {_fmt(run.ready_p50)} s max {_fmt(run.ready_max)} s, "
                f"RSS idle {run.rss_idle_kib / 1024:.1f} MiB -> {run.rss_kib / 1024:.1f} MiB "
                f"(peak {run.hwm_kib / 1024:.1f} MiB)"
            )
            per = ", ".join(
                f"{label} {count / run.engines:g}" for label, count in run.writes.items()
            )
            lines.append(f"    operator writes per engine: {per}")
            kub = ", ".join(
                f"{label} {count / run.engines:g}" for label, count in run.kubelet_writes.items()
            )
            lines.append(f"    pod runner writes per engine: {kub}")
            lines.append("    what the TradingEngine writes changed (per engine):")
            for change, count in run.engine_changes.items():
                lines.append(f"      {count / run.engines:g} x {change}")
    return "\n".join(lines)


async def measure(args: argparse.Namespace, settle: float) -> list[tuple[RunResult, RunResult]]:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    pairs: list[tuple[RunResult, RunResult]] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            root = Path(args.workdir)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hean-conv-")))
        for n in sizes:
            results = []
            for which in ("hean", "baseline"):
                result = await run_one(
                    which,
                    n,
                    args.poll_interval,
                    settle,
                    args.timeout,
                    root / f"{which}-{n}",
                    skip_gc=args.skip_emulator_gc,
                )
                print(
                    f"{which:8} N={n:5}: {_fmt(result.seconds)} s, "
                    f"{result.writes_per_create:.2f} writes/create, "
                    f"{result.rss_per_engine_kib:.1f} KiB/engine",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
            pairs.append((results[0], results[1]))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated engine counts")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="the operator's, seconds")
    parser.add_argument(
        "--settle", type=float, default=None, help="seconds to count trailing writes"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--workdir", default=None, help="keep sandboxes and logs here")
    parser.add_argument(
        "--skip-emulator-gc",
        action="store_true",
        help="turn off the apiserver emulator's O(objects)-per-write garbage collector",
    )
    args = parser.parse_args()
    settle = args.settle if args.settle is not None else 1.5 * args.poll_interval
    pairs = asyncio.run(measure(args, settle))
    print(report(pairs, args.poll_interval, args.skip_emulator_gc))
    if args.json:
        payload = {
            "poll_interval": args.poll_interval,
            "skip_emulator_gc": args.skip_emulator_gc,
            "settle": settle,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "targets": {
                "ratio": TARGET_RATIO,
                "writes_per_create": TARGET_WRITES,
                "rss_kib_per_engine": TARGET_RSS_KIB,
            },
            "runs": [asdict(r) for pair in pairs for r in pair],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
