"""Stubs of Tilt's Tiltfile API that record what a Tiltfile asks for.

`evaluate_tiltfile()` runs a Tiltfile with starlark-pyo3 against these stubs
and returns a `TiltRun`: the images it builds, the Kubernetes objects it
deploys, its resources, port forwards and live updates. Nothing is built,
applied or run. `helm()` does run `helm template` (offline), with the flags
Tilt passes, so the objects are what Tilt would deploy.

Strictness, so that a typo fails a test:
- only Tilt's builtins (API below) are defined: any other name is a Starlark
  "Variable not found" error;
- each builtin takes only Tilt's parameters (an unknown or missing keyword is
  a TypeError), and the recorded ones check their arguments the way Tilt does
  (paths exist, live-update step order, fragments of `objects=`...);
- `TiltRun.assemble()` groups objects into resources as Tilt does (workloads,
  Services by selector, `k8s_resource(objects=...)` taking from what is left)
  and fails where Tilt would fail or warn.

The API list follows Tilt's API reference (docs.tilt.dev/api.html, v0.30+).
"""

from __future__ import annotations

import functools
import inspect
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark as sl
import yaml as pyyaml

# name -> (positional-or-keyword parameters, keyword-only parameters, how many are required)
API: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "analytics_settings": (("enable",), (), 1),
    "allow_k8s_contexts": (("contexts",), (), 1),
    "blob": (("contents",), (), 1),
    "custom_build": (
        (
            "ref",
            "command",
            "deps",
            "tag",
            "disable_push",
            "skips_local_docker",
            "live_update",
            "match_in_env_vars",
            "ignore",
            "entrypoint",
            "command_bat_val",
            "outputs_image_ref_to",
            "command_bat",
            "image_deps",
        ),
        (),
        3,
    ),
    "decode_json": (("json",), (), 1),
    "decode_yaml": (("yaml",), (), 1),
    "decode_yaml_stream": (("yaml",), (), 1),
    "default_registry": (("host", "host_from_cluster", "single_name"), (), 1),
    "disable_snapshots": ((), (), 0),
    "docker_build": (
        (
            "ref",
            "context",
            "build_args",
            "dockerfile",
            "dockerfile_contents",
            "live_update",
            "match_in_env_vars",
            "ignore",
            "only",
            "entrypoint",
            "target",
            "ssh",
            "network",
            "secret",
            "extra_tag",
            "container_args",
            "cache_from",
            "pull",
            "platform",
        ),
        (),
        2,
    ),
    "docker_prune_settings": (
        ("disable", "max_age_mins", "num_builds", "interval_hrs", "keep_recent"),
        (),
        0,
    ),
    "enable_feature": (("feature_name",), (), 1),
    "encode_json": (("obj",), (), 1),
    "encode_yaml": (("obj",), (), 1),
    "encode_yaml_stream": (("objs",), (), 1),
    "exit": (("code",), (), 1),
    "fall_back_on": (("files",), (), 1),
    "filter_yaml": (("yaml", "labels", "name", "namespace", "kind", "api_version"), (), 1),
    "helm": (("paths", "name", "namespace", "values", "set", "kube_version"), (), 1),
    "include": (("path",), (), 1),
    "k8s_context": ((), (), 0),
    "k8s_custom_deploy": (
        (
            "name",
            "apply_cmd",
            "delete_cmd",
            "deps",
            "image_selector",
            "live_update",
            "apply_dir",
            "apply_env",
            "apply_cmd_bat",
            "delete_dir",
            "delete_env",
            "delete_cmd_bat",
            "container_selector",
            "image_deps",
        ),
        (),
        4,
    ),
    "k8s_kind": (("kind", "api_version"), ("image_json_path", "image_object", "pod_readiness"), 1),
    "k8s_namespace": ((), (), 0),
    "k8s_resource": (
        (
            "workload",
            "new_name",
            "port_forwards",
            "extra_pod_selectors",
            "trigger_mode",
            "resource_deps",
            "objects",
            "auto_init",
            "pod_readiness",
            "links",
            "labels",
            "discovery_strategy",
        ),
        (),
        0,
    ),
    "k8s_yaml": (("yaml", "allow_duplicates"), (), 1),
    "kustomize": (("paths", "kustomize_bin"), (), 1),
    "link": (("url", "name"), (), 1),
    "listdir": (("directory", "recursive"), (), 1),
    "load_dynamic": (("path",), (), 1),
    "local": (("command", "quiet", "command_bat", "echo_off", "env", "dir", "stdin"), (), 1),
    "local_resource": (
        (
            "name",
            "cmd",
            "deps",
            "trigger_mode",
            "resource_deps",
            "ignore",
            "auto_init",
            "serve_cmd",
            "cmd_bat",
            "serve_cmd_bat",
            "allow_parallel",
            "links",
            "tags",
            "env",
            "serve_env",
            "readiness_probe",
            "dir",
            "serve_dir",
            "labels",
        ),
        (),
        1,
    ),
    "port_forward": (("local_port", "container_port", "name", "link_path", "host"), (), 1),
    "print": ((), (), 0),  # *args, like Starlark's print
    "read_file": (("file_path", "default"), (), 1),
    "read_json": (("path", "default"), (), 1),
    "read_yaml": (("path", "default"), (), 1),
    "read_yaml_stream": (("path", "default"), (), 1),
    "restart_container": ((), (), 0),
    "run": (("cmd", "trigger"), (), 1),
    "secret_settings": (("disable_scrub",), (), 0),
    "set_team": (("team_id",), (), 1),
    "sync": (("local_path", "remote_path"), (), 2),
    "trigger_mode": (("trigger_mode",), (), 1),
    "update_settings": (
        ("max_parallel_updates", "k8s_upsert_timeout_secs", "suppress_unused_image_warnings"),
        (),
        0,
    ),
    "version_settings": (("check_updates", "constraint"), (), 0),
    "warn": (("msg",), (), 1),
    "watch_file": (("file_path",), (), 1),
    "watch_settings": (("ignore",), (), 1),
    "workload_to_resource_function": (("fn",), (), 1),
}

# The `config` module (config.define_string_list(...), config.parse()...).
CONFIG_API: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "define_bool": (("name", "args", "usage"), (), 1),
    "define_string": (("name", "args", "usage"), (), 1),
    "define_string_list": (("name", "args", "usage"), (), 1),
    "parse": ((), (), 0),
    "set_enabled_resources": (("resources",), (), 1),
    "clear_enabled_resources": ((), (), 0),
}

# libyaml when present: the chart's CRD is large and pure-Python YAML is slow.
_Loader = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)
_Dumper = getattr(pyyaml, "CSafeDumper", pyyaml.SafeDumper)


def load_all(text: str) -> list[Any]:
    return list(pyyaml.load_all(text, Loader=_Loader))


def dump_all(objs: list[Any]) -> str:
    return pyyaml.dump_all(objs, Dumper=_Dumper, sort_keys=False)


@functools.lru_cache(maxsize=32)
def _helm_template(cmd: tuple[str, ...], env: tuple[tuple[str, str], ...]) -> tuple[int, str, str]:
    """`helm template` is deterministic: one run per distinct command line."""
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(env), timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr


TRIGGER_MODE_AUTO = "TRIGGER_MODE_AUTO"
TRIGGER_MODE_MANUAL = "TRIGGER_MODE_MANUAL"

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


class TiltfileError(Exception):
    """What Tilt would report as a Tiltfile load error (or a warning we treat as one)."""


# -- values the builtins return -----------------------------------------------------


@dataclass(frozen=True)
class Blob:
    text: str
    source: str


@dataclass(frozen=True)
class Sync:
    local_path: Path
    remote_path: str


@dataclass(frozen=True)
class Run:
    cmd: str | list[str]
    trigger: tuple[str, ...] = ()


@dataclass(frozen=True)
class FallBackOn:
    files: tuple[Path, ...]


@dataclass(frozen=True)
class PortForward:
    local_port: int
    container_port: int | None = None
    name: str | None = None
    link_path: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Link:
    url: str
    name: str | None = None


LiveUpdateStep = Sync | Run | FallBackOn


# -- what a run records ---------------------------------------------------------------


@dataclass
class DockerBuild:
    ref: str
    context: Path
    dockerfile: Path | None
    dockerfile_contents: str | None
    live_update: list[LiveUpdateStep]
    kwargs: dict[str, Any]

    @property
    def contents(self) -> str:
        if self.dockerfile_contents is not None:
            return self.dockerfile_contents
        assert self.dockerfile is not None
        return self.dockerfile.read_text()

    @property
    def syncs(self) -> list[Sync]:
        return [s for s in self.live_update if isinstance(s, Sync)]

    @property
    def runs(self) -> list[Run]:
        return [s for s in self.live_update if isinstance(s, Run)]


@dataclass
class K8sObject:
    obj: dict[str, Any]
    source: str

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace") or "")

    def fragments(self) -> set[str]:
        """Tilt's object selector fragments: name, name:kind, name:kind:namespace."""
        name, kind = self.name.lower(), self.kind.lower()
        out = {name, f"{name}:{kind}"}
        if self.namespace:
            out.add(f"{name}:{kind}:{self.namespace.lower()}")
        return out


@dataclass
class Resource:
    name: str
    objects: list[K8sObject] = field(default_factory=list)
    images: set[str] = field(default_factory=set)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def port_forwards(self) -> list[PortForward]:
        return list(self.options.get("port_forwards") or [])

    @property
    def resource_deps(self) -> list[str]:
        return list(self.options.get("resource_deps") or [])


@dataclass
class TiltRun:
    root: Path
    context: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    images: list[DockerBuild] = field(default_factory=list)
    objects: list[K8sObject] = field(default_factory=list)
    k8s_resource_calls: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[dict[str, Any]] = field(default_factory=list)
    local_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    allowed_contexts: list[str] = field(default_factory=list)
    helm_calls: list[dict[str, Any]] = field(default_factory=list)
    yaml_sources: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)
    config_settings: list[str] = field(default_factory=list)
    resources: dict[str, Resource] = field(default_factory=dict)

    def called(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for fn, kwargs in self.calls if fn == name]

    def image(self, ref: str) -> DockerBuild:
        (found,) = [i for i in self.images if i.ref == ref]
        return found

    def find(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [o.obj for o in self.objects if o.kind == kind and o.name == name]
        return found

    def all_port_forwards(self) -> dict[int, tuple[str, PortForward]]:
        out: dict[int, tuple[str, PortForward]] = {}
        for resource in self.resources.values():
            for pf in resource.port_forwards:
                if pf.local_port in out:
                    raise TiltfileError(f"local port {pf.local_port} forwarded twice")
                out[pf.local_port] = (resource.name, pf)
        return out

    # -- Tilt's resource assembly (v2), far enough to catch what Tilt rejects -------

    def _image_refs_of(self, obj: dict[str, Any]) -> set[str]:
        """Built image refs (names) this object uses: container images, and env values
        of images built with match_in_env_vars."""
        built = {image_name(i.ref): i for i in self.images}
        found: set[str] = set()
        for container in containers_of(obj):
            name = image_name(str(container.get("image", "")))
            if name in built:
                found.add(name)
            for env in container.get("env") or []:
                value = env.get("value")
                ref = image_name(value) if isinstance(value, str) else None
                if ref in built and built[ref].kwargs.get("match_in_env_vars"):
                    found.add(ref)
        return found

    def _is_kind_workload(self, obj: K8sObject) -> bool:
        for k in self.kinds:
            if not re.fullmatch(k["kind"], obj.kind, re.IGNORECASE):
                continue
            api = k.get("api_version")
            if api is None or re.fullmatch(api, str(obj.obj.get("apiVersion")), re.IGNORECASE):
                return True
        return False

    def assemble(self) -> dict[str, Resource]:
        rest: list[K8sObject] = []
        for o in self.objects:
            is_workload = (
                o.kind in POD_TEMPLATE_KINDS
                or o.kind == "Pod"
                or self._is_kind_workload(o)
                or bool(self._image_refs_of(o.obj))
            )
            if not is_workload:
                rest.append(o)
                continue
            if o.name in self.resources:
                raise TiltfileError(f"two workloads named {o.name} (Tilt would rename them)")
            resource = Resource(o.name, [o], self._image_refs_of(o.obj))
            self.resources[o.name] = resource
            labels = pod_template_labels(o.obj)
            for other in list(rest):
                if other.kind == "Service" and selects(other.obj, labels):
                    resource.objects.append(other)
                    rest.remove(other)
        # Services declared after their workload.
        for resource in self.resources.values():
            labels = pod_template_labels(resource.objects[0].obj)
            for other in list(rest):
                if other.kind == "Service" and selects(other.obj, labels):
                    resource.objects.append(other)
                    rest.remove(other)

        for call in self.k8s_resource_calls:
            workload, new_name = call.get("workload") or "", call.get("new_name") or ""
            if workload:
                if workload not in self.resources:
                    raise TiltfileError(
                        f"k8s_resource specified unknown resource {workload!r}. "
                        f"known resources: {', '.join(sorted(self.resources))}"
                    )
                resource = self.resources[workload]
            else:
                if not (new_name and call.get("objects")):
                    raise TiltfileError("k8s_resource without workload needs objects and new_name")
                resource = self.resources.setdefault(new_name, Resource(new_name))
            for fragment in call.get("objects") or []:
                every = [o for o in self.objects if fragment.lower() in o.fragments()]
                if len(every) != 1:
                    raise TiltfileError(f"{fragment!r} matches {len(every)} objects, not exactly 1")
                if every[0] not in rest:
                    raise TiltfileError(
                        f"No object identified by the fragment {fragment!r} could be found "
                        "in remaining YAML (it already belongs to a resource)"
                    )
                rest.remove(every[0])
                resource.objects.append(every[0])
            resource.options.update({k: v for k, v in call.items() if k != "workload"})
            if new_name and workload:
                self.resources[new_name] = self.resources.pop(workload)
                resource.name = new_name

        if rest:
            names = [f"{o.name}:{o.kind}" for o in rest]
            raise TiltfileError(f"objects in no resource (Tilt's 'uncategorized'): {names}")

        used = set().union(*(r.images for r in self.resources.values()))
        for image in self.images:
            if image_name(image.ref) not in used:
                raise TiltfileError(f"Image not used in any deploy config: {image.ref}")

        known = set(self.resources) | set(self.local_resources)
        for name, resource in self.resources.items():
            for dep in resource.resource_deps:
                if dep not in known:
                    raise TiltfileError(f"resource {name}: unknown resource_deps {dep!r}")
        for name, options in self.local_resources.items():
            for dep in options.get("resource_deps") or []:
                if dep not in known:
                    raise TiltfileError(f"local_resource {name}: unknown resource_deps {dep!r}")
        self.all_port_forwards()
        return self.resources


# -- helpers ------------------------------------------------------------------------


def image_name(ref: str) -> str:
    """An image ref without tag or digest (what Tilt matches refs on)."""
    ref = ref.split("@", 1)[0]
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail else ref


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec") if obj.get("kind") != "Pod" else spec
    if not pod:
        return []
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def pod_template_labels(obj: dict[str, Any]) -> dict[str, str]:
    template = (obj.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def selects(service: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def string_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{what}: expected a string or a list of strings, got {value!r}")


def _signature(params: Iterable[str], kwonly: Iterable[str], required: int) -> inspect.Signature:
    out = []
    for i, name in enumerate(params):
        default = inspect.Parameter.empty if i < required else None
        out.append(
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        )
    out += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in kwonly]
    return inspect.Signature(out)


# -- the builtins ------------------------------------------------------------------------


class TiltApi:
    """Builtins bound to one TiltRun; `helm` runs a real `helm template`."""

    def __init__(self, run: TiltRun, helm_binary: Path, helm_env: dict[str, str]) -> None:
        self.run = run
        self.helm_binary = helm_binary
        self.helm_env = helm_env

    # paths are relative to the Tiltfile's directory, as in Tilt
    def path(self, value: str, what: str, *, must_exist: bool = True) -> Path:
        if not isinstance(value, str):
            raise TypeError(f"{what}: expected a path string, got {value!r}")
        path = (self.run.root / value).resolve()
        if must_exist and not path.exists():
            raise TiltfileError(f"{what}: {value} does not exist")
        return path

    @staticmethod
    def text_of(value: Any, what: str) -> str:
        if isinstance(value, Blob):
            return value.text
        if isinstance(value, str):
            return value
        raise TypeError(f"{what}: expected a string or a Blob, got {value!r}")

    def add_yaml(self, text: str, source: str) -> None:
        for doc in load_all(text):
            if not doc:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
                raise TiltfileError(f"{source}: not a Kubernetes object: {doc!r}")
            self.run.objects.append(K8sObject(doc, source))

    # -- implemented --------------------------------------------------------------------

    def k8s_context(self) -> str:
        return self.run.context

    def allow_k8s_contexts(self, contexts: Any) -> None:
        self.run.allowed_contexts += string_list(contexts, "allow_k8s_contexts")

    def read_file(self, file_path: str, default: Any = None) -> str:
        path = self.path(file_path, "read_file", must_exist=default is None)
        return path.read_text() if path.exists() else str(default)

    def read_yaml_stream(self, path: str, default: Any = None) -> list[Any]:
        return load_all(self.read_file(path, default))

    def decode_yaml_stream(self, yaml: Any) -> list[Any]:
        return load_all(self.text_of(yaml, "decode_yaml_stream"))

    def encode_yaml_stream(self, objs: Any) -> sl.OpaquePythonObject:
        if not isinstance(objs, list):
            raise TypeError(f"encode_yaml_stream: expected a list, got {objs!r}")
        text = dump_all(objs)
        return sl.OpaquePythonObject(Blob(text, "encode_yaml_stream"))

    def blob(self, contents: str) -> sl.OpaquePythonObject:
        return sl.OpaquePythonObject(Blob(self.text_of(contents, "blob"), "blob"))

    def watch_file(self, file_path: str) -> None:
        self.path(file_path, "watch_file", must_exist=False)

    def k8s_yaml(self, yaml: Any, allow_duplicates: Any = None) -> None:
        if isinstance(yaml, Blob):
            self.run.yaml_sources.append(yaml.source)
            self.add_yaml(yaml.text, yaml.source)
            return
        for p in string_list(yaml, "k8s_yaml"):
            self.run.yaml_sources.append(p)
            self.add_yaml(self.path(p, "k8s_yaml").read_text(), p)

    def helm(
        self,
        paths: str,
        name: str | None = None,
        namespace: str | None = None,
        values: Any = None,
        set: Any = None,  # Tilt's parameter name
        kube_version: str | None = None,
    ) -> sl.OpaquePythonObject:
        chart = self.path(paths, "helm")
        if not (chart / "Chart.yaml").is_file():
            raise TiltfileError(
                f"helm() may only be called on directories with Chart.yaml: {paths}"
            )
        value_files = string_list(values or [], "helm values")
        sets = string_list(set or [], "helm set")
        self.run.helm_calls.append(
            {
                "chart": paths,
                "name": name,
                "namespace": namespace,
                "values": value_files,
                "set": sets,
            }
        )
        # What Tilt runs (helm 3.1+): helm template <name> <chart> --include-crds ...
        cmd = [str(self.helm_binary), "template", name or "chart", str(chart), "--include-crds"]
        if namespace:
            cmd += ["--namespace", namespace]
        if kube_version:
            cmd += ["--kube-version", kube_version]
        for f in value_files:
            cmd += ["--values", str(self.path(f, "helm values"))]
        for s in sets:
            cmd += ["--set", s]
        returncode, stdout, stderr = _helm_template(
            tuple(cmd), tuple(sorted(self.helm_env.items()))
        )
        if returncode != 0:
            raise TiltfileError(f"helm template failed: {stderr}")
        # Tilt drops the chart's tests (`# Source: .../tests/...`) and sets the
        # namespace on every object that has none.
        docs = [d for d in stdout.split("---\n") if not re.search(r"^# Source: .*/tests/", d, re.M)]
        objs = [o for o in load_all("---\n".join(docs)) if o]
        if namespace:
            for o in objs:
                o["metadata"].setdefault("namespace", namespace)
        return sl.OpaquePythonObject(Blob(dump_all(objs), f"helm: {paths}"))

    def sync(self, local_path: str, remote_path: str) -> sl.OpaquePythonObject:
        local = self.path(local_path, "sync")
        if not isinstance(remote_path, str) or not remote_path.startswith("/"):
            raise TiltfileError(f"sync: remote path must be absolute: {remote_path!r}")
        return sl.OpaquePythonObject(Sync(local, remote_path))

    def run_(self, cmd: Any, trigger: Any = None) -> sl.OpaquePythonObject:
        if not isinstance(cmd, str):
            cmd = string_list(cmd, "run")
        return sl.OpaquePythonObject(Run(cmd, tuple(string_list(trigger or [], "run trigger"))))

    def fall_back_on(self, files: Any) -> sl.OpaquePythonObject:
        paths = tuple(self.path(f, "fall_back_on") for f in string_list(files, "fall_back_on"))
        return sl.OpaquePythonObject(FallBackOn(paths))

    def port_forward(
        self,
        local_port: int,
        container_port: int | None = None,
        name: str | None = None,
        link_path: str | None = None,
        host: str | None = None,
    ) -> sl.OpaquePythonObject:
        for port in (local_port, container_port):
            if port is not None and not (isinstance(port, int) and 0 < port < 65536):
                raise TiltfileError(f"port_forward: not a port: {port!r}")
        return sl.OpaquePythonObject(PortForward(local_port, container_port, name, link_path, host))

    def link(self, url: str, name: str | None = None) -> sl.OpaquePythonObject:
        return sl.OpaquePythonObject(Link(url, name))

    def docker_build(self, ref: str, context: str, **kwargs: Any) -> None:
        ctx = self.path(context, "docker_build context")
        if kwargs.get("dockerfile") is not None and kwargs.get("dockerfile_contents") is not None:
            raise TiltfileError("Cannot specify both dockerfile and dockerfile_contents")
        dockerfile = None
        contents = kwargs.get("dockerfile_contents")
        if contents is not None:
            contents = self.text_of(contents, "dockerfile_contents")
        else:
            dockerfile = self.path(
                kwargs.get("dockerfile") or f"{context}/Dockerfile", "dockerfile"
            )
        live_update = kwargs.get("live_update") or []
        self.check_live_update(live_update, ctx)
        build = DockerBuild(ref, ctx, dockerfile, contents, list(live_update), kwargs)
        target = kwargs.get("target")
        if target and not re.search(
            rf"^FROM\s+\S+\s+AS\s+{re.escape(target)}\s*$", build.contents, re.M | re.I
        ):
            raise TiltfileError(f"docker_build {ref}: no stage named {target!r}")
        if any(image_name(i.ref) == image_name(ref) for i in self.run.images):
            raise TiltfileError(f"Image for ref {ref!r} has already been defined")
        self.run.images.append(build)

    @staticmethod
    def check_live_update(steps: list[Any], context: Path) -> None:
        order = {FallBackOn: 0, Sync: 1, Run: 2}
        last = 0
        for step in steps:
            if type(step) not in order:
                raise TiltfileError(f"live_update: not a live update step: {step!r}")
            if order[type(step)] < last:
                raise TiltfileError(
                    "live_update: fall_back_on steps come first, then syncs, then runs"
                )
            last = order[type(step)]
            locals_ = step.files if isinstance(step, FallBackOn) else ()
            if isinstance(step, Sync):
                locals_ = (step.local_path,)
            for p in locals_:
                if not p.is_relative_to(context):
                    raise TiltfileError(f"live_update: {p} is outside the build context {context}")

    def k8s_resource(self, **kwargs: Any) -> None:
        for pf in kwargs.get("port_forwards") or []:
            if not isinstance(pf, PortForward | int | str):
                raise TypeError(f"port_forwards: {pf!r}")
        kwargs["port_forwards"] = [
            pf if isinstance(pf, PortForward) else PortForward(int(str(pf).split(":")[0]))
            for pf in (kwargs.get("port_forwards") or [])
        ]
        if kwargs.get("objects") is not None:
            string_list(kwargs["objects"], "objects")
        self.run.k8s_resource_calls.append({k: v for k, v in kwargs.items() if v is not None})

    def k8s_kind(self, kind: str, api_version: str | None = None, **kwargs: Any) -> None:
        readiness = kwargs.get("pod_readiness")
        if readiness not in (None, "", "wait", "ignore"):
            raise TiltfileError(f"k8s_kind: pod_readiness {readiness!r}")
        self.run.kinds.append({"kind": kind, "api_version": api_version, **kwargs})

    def local_resource(self, name: str, **kwargs: Any) -> None:
        if name in self.run.local_resources:
            raise TiltfileError(f"local_resource named {name!r} already exists")
        if kwargs.get("trigger_mode") not in (None, TRIGGER_MODE_AUTO, TRIGGER_MODE_MANUAL):
            raise TiltfileError(f"local_resource {name}: bad trigger_mode")
        if not (kwargs.get("cmd") or kwargs.get("serve_cmd")):
            raise TiltfileError(f"local_resource {name}: needs cmd or serve_cmd")
        self.run.local_resources[name] = {k: v for k, v in kwargs.items() if v is not None}

    def print_(self, *args: Any) -> None:
        self.run.printed.append(" ".join(str(a) for a in args))

    # -- binding ----------------------------------------------------------------------

    # config.*: settings are defined and parsed as with no `tilt up -- args`
    def config_define(self, name: str, args: Any = None, usage: Any = None) -> None:
        self.run.config_settings.append(name)

    def config_parse(self) -> dict[str, Any]:
        return {}

    def config_set_enabled_resources(self, resources: Any) -> None:
        string_list(resources, "set_enabled_resources")

    def config_clear_enabled_resources(self) -> None:
        pass

    def implementation(self, name: str) -> Callable[..., Any] | None:
        if name.startswith("config.define_"):
            return self.config_define
        attr = {"run": "run_", "print": "print_"}.get(name, name.replace("config.", "config_"))
        return getattr(self, attr, None)

    def builtin(
        self, name: str, spec: tuple[tuple[str, ...], tuple[str, ...], int]
    ) -> Callable[..., Any]:
        signature = _signature(*spec)
        impl = self.implementation(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "print":
                if kwargs:
                    raise TypeError(f"print: unexpected keywords {sorted(kwargs)}")
                return self.print_(*args)
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{name}: {exc}") from None
            self.run.calls.append((name, dict(bound.arguments)))
            if impl is None:
                raise TiltfileError(f"{name}() is a Tilt builtin these stubs do not model")
            return impl(**bound.arguments)

        call.__name__ = name
        return call


def evaluate_tiltfile(
    tiltfile: Path,
    *,
    context: str,
    helm_binary: Path,
    helm_env: dict[str, str],
    source: str | None = None,
) -> TiltRun:
    """Evaluate `tiltfile` (or `source` as if it were that file) against the stubs,
    then assemble its resources like Tilt."""
    run = TiltRun(root=tiltfile.parent, context=context)
    api = TiltApi(run, helm_binary, helm_env)
    module = sl.Module()
    for name, spec in API.items():
        module.add_callable(name, api.builtin(name, spec))
    for name, spec in CONFIG_API.items():
        module.add_callable(f"_config_{name}", api.builtin(f"config.{name}", spec))
    module["TRIGGER_MODE_AUTO"] = TRIGGER_MODE_AUTO
    module["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_MANUAL
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType])
    fields = ", ".join(f"{n}=_config_{n}" for n in CONFIG_API)
    prelude = f"config = struct({fields})\n"
    sl.eval(module, sl.parse("<tilt prelude>", prelude, sl.Dialect.standard()), globals_)
    # Tilt's Starlark allows top-level if/for; the standard dialect (stricter)
    # keeps the Tiltfile in the subset every Starlark accepts.
    text = tiltfile.read_text() if source is None else source
    ast = sl.parse(str(tiltfile), text, sl.Dialect.standard())
    sl.eval(module, ast, globals_)
    run.assemble()
    return run
