"""The reader pod that serves a Backtest's report, and the console's reuse of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hean_desk.console.desk_source import DeskSource
from hean_desk.errors import DeskError
from hean_desk.report_reader import (
    DEADLINE_SECONDS,
    READER_DIR,
    READER_PORT,
    ReportMissing,
    ReportTarget,
    is_ready,
    pod_problem,
    reader_pod,
    report_target,
    selector,
)
from hean_desk.views import BacktestView

NS = "research"


def backtest(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "Backtest",
        "metadata": {"name": "ema", "namespace": NS, "uid": "0123abcd-uid"},
        "spec": {
            "strategy": {"name": "ema_cross", "params": {}},
            "output": {"claimName": "results"},
        },
        "status": {
            "phase": "Succeeded",
            "jobName": "ema-backtest",
            "report": {"claimName": "results", "path": "reports/research/ema/0123abcd/0.html"},
            **status,
        },
    }


JOB_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
CONTAINER_SECURITY = {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
JOB = {
    "metadata": {"name": "ema-backtest"},
    "spec": {
        "template": {
            "spec": {
                "securityContext": JOB_SECURITY,
                "imagePullSecrets": [{"name": "registry"}],
                "nodeSelector": {"pool": "batch"},
                "containers": [
                    {
                        "name": "backtest",
                        "image": "registry.example/acme/strategies:1.2",
                        "imagePullPolicy": "Always",
                        "command": ["hean", "engine", "backtest", "--config", "x"],
                        "securityContext": CONTAINER_SECURITY,
                    }
                ],
            }
        }
    },
}


def target() -> ReportTarget:
    return report_target(BacktestView.from_object(backtest()))


def test_the_target_is_the_report_directory_and_file_of_the_status() -> None:
    found = target()
    assert (found.claim, found.directory, found.file) == (
        "results",
        "reports/research/ema/0123abcd",
        "0.html",
    )
    assert (found.backtest, found.uid, found.job) == ("ema", "0123abcd-uid", "ema-backtest")
    swept = backtest(sweep={"runs": 4, "rankBy": "sharpe"})
    assert report_target(BacktestView.from_object(swept), 3).path == (
        "reports/research/ema/0123abcd/3.html"
    )


@pytest.mark.parametrize("path", ["/etc/0.html", "../x/0.html", "reports/../../0.html", "0.html"])
def test_a_report_path_that_leaves_the_volume_is_refused(path: str) -> None:
    obj = backtest(report={"claimName": "results", "path": path})
    with pytest.raises(DeskError, match="is not a report path"):
        report_target(BacktestView.from_object(obj))


def test_the_reader_pod_mounts_only_the_report_directory_read_only() -> None:
    pod = reader_pod(target(), JOB)
    spec = pod["spec"]
    (volume,) = spec["volumes"]
    assert volume == {
        "name": "output",
        "persistentVolumeClaim": {"claimName": "results", "readOnly": True},
    }
    (container,) = spec["containers"]
    assert container["volumeMounts"] == [
        {
            "name": "output",
            "mountPath": READER_DIR,
            "subPath": "reports/research/ema/0123abcd",
            "readOnly": True,
        }
    ]
    assert container["command"] == [
        *("hean", "engine", "serve-reports", "--dir", READER_DIR),
        *("--port", str(READER_PORT), "--idle-exit", "900"),
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": READER_PORT}


def test_the_reader_pod_runs_as_the_job_did_and_goes_with_the_backtest() -> None:
    pod = reader_pod(target(), JOB)
    spec, meta = pod["spec"], pod["metadata"]
    container = spec["containers"][0]
    # the image (a user's derived one here), its pull policy and secrets, where it may run
    assert (container["image"], container["imagePullPolicy"]) == (
        "registry.example/acme/strategies:1.2",
        "Always",
    )
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["nodeSelector"] == {"pool": "batch"}
    assert spec["securityContext"] == JOB_SECURITY
    assert container["securityContext"] == CONTAINER_SECURITY
    # no API access, a bounded life, never restarted
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert (spec["restartPolicy"], spec["activeDeadlineSeconds"]) == ("Never", DEADLINE_SECONDS)
    # owned by the Backtest (garbage-collected with it), but not as its controller
    assert meta["ownerReferences"] == [
        {"apiVersion": "hean.io/v1alpha1", "kind": "Backtest", "name": "ema", "uid": "0123abcd-uid"}
    ]
    assert meta["generateName"] == "ema-report-" and meta["namespace"] == NS
    assert meta["labels"]["hean.io/backtest"] == "ema"
    assert selector(target()) == "app.kubernetes.io/component=report-reader,hean.io/backtest=ema"
    # the operator's Job-pod selector (job-name) never matches it
    assert "batch.kubernetes.io/job-name" not in meta["labels"]


def test_a_job_without_defaults_gets_a_locked_down_container() -> None:
    job = copy.deepcopy(JOB)
    ran = job["spec"]["template"]["spec"]["containers"][0]
    del ran["securityContext"], ran["imagePullPolicy"], ran["command"]
    container = reader_pod(target(), job)["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"][:3] == ["hean", "engine", "serve-reports"]
    with pytest.raises(DeskError, match="no container image"):
        reader_pod(target(), {"spec": {}})


def pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "ema-report-abcde"}, "status": status}


def test_pod_readiness_and_the_reasons_it_never_will_be() -> None:
    assert is_ready(pod(conditions=[{"type": "Ready", "status": "True"}]))
    assert not is_ready(pod(phase="Running"))
    assert pod_problem(pod(phase="Pending")) is None
    pulling = pod(
        phase="Pending",
        containerStatuses=[
            {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
        ],
    )
    assert pod_problem(pulling) == "ImagePullBackOff: not found"
    ended = pod(
        phase="Failed",
        containerStatuses=[
            {"state": {"terminated": {"exitCode": 2, "message": "No such command"}}}
        ],
    )
    problem = pod_problem(ended)
    assert problem is not None
    assert problem.startswith("its server ended (exit 2): No such command")
    assert "serve-reports" in problem
    assert pod_problem(pod(phase="Failed", reason="DeadlineExceeded")) == (
        "the pod is Failed: DeadlineExceeded"
    )


class ReaderDesk:
    """The DeskClient methods DeskSource uses for reports, counting pods."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.deleted: list[str] = []
        self.reads: list[tuple[str, str]] = []
        self.gone: set[str] = set()
        self.missing: set[str] = set()
        self.not_ready = False
        self.default_namespace = NS
        self.api = None  # CustomObjectsApi(None): a client never used here

    def get_backtest(self, namespace: str, name: str) -> BacktestView:
        return BacktestView.from_object(backtest(sweep={"runs": 3, "rankBy": "sharpe"}))

    def start_report_reader(self, target: ReportTarget) -> str:
        name = f"ema-report-{len(self.started)}"
        self.started.append(name)
        return name

    def wait_report_reader(self, namespace: str, pod: str, timeout: float) -> None:
        if self.not_ready:
            raise DeskError(f"the reader pod {namespace}/{pod} cannot serve the report")

    def read_report_file(self, target: ReportTarget, pod: str) -> bytes:
        if pod in self.gone:
            raise DeskError(f"engine {NS}/{pod} has no running pod")
        if target.file in self.missing:
            raise ReportMissing(f"the report {target.path} is not on claim results")
        self.reads.append((pod, target.file))
        return f"<html>{target.file}</html>".encode()

    def delete_pod(self, namespace: str, pod: str) -> None:
        self.deleted.append(pod)


def test_the_console_keeps_one_reader_pod_per_backtest_and_deletes_it_when_it_stops() -> None:
    desk = ReaderDesk()
    source = DeskSource(desk)  # type: ignore[arg-type]
    assert source.backtest_report(NS, "ema") == b"<html>0.html</html>"
    assert source.backtest_report(NS, "ema", 2) == b"<html>2.html</html>"
    assert desk.started == ["ema-report-0"] and desk.deleted == []
    assert desk.reads == [("ema-report-0", "0.html"), ("ema-report-0", "2.html")]
    # a file that is not there is said, and the pod kept
    desk.missing.add("1.html")
    with pytest.raises(ReportMissing):
        source.backtest_report(NS, "ema", 1)
    assert desk.deleted == []
    # the pod ended by itself (idle): another one, the old one deleted
    desk.gone.add("ema-report-0")
    assert source.backtest_report(NS, "ema") == b"<html>0.html</html>"
    assert desk.started == ["ema-report-0", "ema-report-1"]
    assert desk.deleted == ["ema-report-0"]
    source.close_report_readers()
    assert desk.deleted == ["ema-report-0", "ema-report-1"]
    source.close_report_readers()  # nothing left to delete
    assert desk.deleted == ["ema-report-0", "ema-report-1"]


def test_a_reader_pod_that_never_gets_ready_is_deleted_and_said() -> None:
    desk = ReaderDesk()
    desk.not_ready = True
    source = DeskSource(desk)  # type: ignore[arg-type]
    with pytest.raises(DeskError, match="cannot serve the report"):
        source.backtest_report(NS, "ema")
    assert desk.deleted == ["ema-report-0"]
    source.close_report_readers()
    assert desk.deleted == ["ema-report-0"]
