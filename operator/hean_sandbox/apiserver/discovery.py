"""Discovery documents: /version, /api, /apis, group versions, aggregated discovery v2."""

from __future__ import annotations

from typing import Any

from .resources import ResourceInfo
from .store import Registry

JsonDict = dict[str, Any]

AGGREGATED_MARKER = "as=APIGroupDiscoveryList"
SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "binding": ["create"], "log": ["get"]}


def version_info() -> JsonDict:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-hean-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def aggregated_version(accept: str) -> str | None:
    """The apidiscovery.k8s.io version the client asks for first, if any."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if AGGREGATED_MARKER in params and "g=apidiscovery.k8s.io" in params:
            for version in ("v2", "v2beta1"):
                if f"v={version}" in params:
                    return version
        elif part.strip().split(";")[0].strip() in ("application/json", "*/*"):
            return None
    return None


def _ordered_versions(registry: Registry, group: str) -> list[str]:
    return registry.groups().get(group, [])


def _resources(registry: Registry, group: str, version: str) -> list[ResourceInfo]:
    return [i for i in registry.all() if i.group == group and i.version == version]


def api_versions(server_address: str) -> JsonDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(registry: Registry, group: str) -> JsonDict:
    versions = _ordered_versions(registry, group)
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> JsonDict:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(registry, g) for g in registry.groups() if g],
    }


def api_group(registry: Registry, group: str) -> JsonDict | None:
    if not group or group not in registry.groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(registry, group)}


def resource_list(registry: Registry, group: str, version: str) -> JsonDict | None:
    infos = _resources(registry, group, version)
    if not infos:
        return None
    resources: list[JsonDict] = []
    for info in infos:
        entry: JsonDict = {
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": list(info.verbs),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        resources.append(entry)
        for sub in info.subresources:
            resources.append(
                {
                    "name": f"{info.plural}/{sub}",
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": "Binding" if sub == "binding" else info.kind,
                    "verbs": SUBRESOURCE_VERBS[sub],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _discovery_resource(info: ResourceInfo) -> JsonDict:
    kind = {"group": info.group, "version": info.version, "kind": info.kind}
    entry: JsonDict = {
        "resource": info.plural,
        "responseKind": kind,
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if info.subresources:
        entry["subresources"] = [
            {
                "subresource": sub,
                "responseKind": (
                    {"group": "", "version": "v1", "kind": "Binding"} if sub == "binding" else kind
                ),
                "verbs": SUBRESOURCE_VERBS[sub],
            }
            for sub in info.subresources
        ]
    return entry


def aggregated(registry: Registry, *, legacy: bool, version: str) -> JsonDict:
    """APIGroupDiscoveryList of /api (legacy=True) or /apis."""
    items = []
    for group in registry.groups():
        if (group == "") != legacy:
            continue
        item: JsonDict = {"metadata": {"creationTimestamp": None}, "versions": []}
        if group:
            item["metadata"]["name"] = group
        for ver in _ordered_versions(registry, group):
            item["versions"].append(
                {
                    "version": ver,
                    "resources": [_discovery_resource(i) for i in _resources(registry, group, ver)],
                    "freshness": "Current",
                }
            )
        items.append(item)
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
