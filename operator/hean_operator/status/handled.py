"""kopf's bookkeeping at no write of its own: its diff base in the status (`status.lastHandledSpec`,
written by the status writer), its progress in annotations only while a handler is retried.

kopf tells a create from an update, and hands an update handler the old and
new `spec.halt` (the user's explicit reset is a change from true to false), by
comparing the object with the last state it handled: its *diff base*. kopf's
own storages write it in a patch of their own after the handlers ran (an
annotation: one more write of the resource per create and per change). Here
the reconcile handler puts it in the status write it makes anyway
(`handled_fields`), and `HandledSpecStorage` is the kopf storage that reads it
back and writes nothing itself.

The diff base is the spec alone (labels and annotations changes are nothing
the operator acts on). Until an engine's status shows what was handled (the
watch event of the write may come after other events), the storage answers
from its memory of what this process handled. An engine last handled by an
operator release that kept it in an annotation is read from that annotation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

FIELD = "lastHandledSpec"
LEGACY_PREFIX = "hean.io"  # the annotation hean.io/last-handled-configuration of earlier releases
LEGACY_KEY = "last-handled-configuration"


def essence(body: Mapping[str, Any]) -> dict[str, Any]:
    """What kopf compares between two states of an engine: its spec.

    Not a copy: kopf copies every essence it keeps (its progress storage's `clear`,
    run on what `build` and `fetch` return, before any comparison), so a copy here
    would be a second one, on every watch event of every engine.
    """
    spec = body.get("spec")
    return {"spec": spec} if spec else {}


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def handled_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The status field that marks `body`'s spec as handled (for the writer)."""
    return {FIELD: encode(essence(body))}


class HandledSpecStorage(kopf.DiffBaseStorage):
    def __init__(self) -> None:
        super().__init__()
        self._legacy = kopf.AnnotationsDiffBaseStorage(prefix=LEGACY_PREFIX, key=LEGACY_KEY)
        self._handled: dict[str, str] = {}  # uid -> handled here, until the status shows it

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, essence(body))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        uid = str(body.metadata.get("uid") or "")
        stored = (body.get("status") or {}).get(FIELD)
        mine = self._handled.get(uid)
        if mine is not None:
            if stored == mine:
                del self._handled[uid]  # the status says it now
            return cast(kopf.BodyEssence, json.loads(mine))
        if isinstance(stored, str):
            return cast(kopf.BodyEssence, json.loads(stored))
        legacy = self._legacy.fetch(body=body)
        if legacy is None:
            return None
        return cast(kopf.BodyEssence, essence(cast(Mapping[str, Any], legacy)))

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        # Nothing in kopf's patch: the reconcile handler wrote it with the status.
        self._handled[str(body.metadata.get("uid") or "")] = encode(
            cast(Mapping[str, Any], essence)
        )

    def forget(self, uid: str) -> None:
        self._handled.pop(uid, None)


class RetryProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's progress of a handler, in annotations (`hean.io/<handler id>`), which are
    written only while a handler is retried (a first-try success leaves none).

    Without kopf's marker annotation (`hean.io/kopf-managed`): it tells other
    kopf operators' annotation diff bases to ignore this prefix, and costs one
    more write of every engine; this operator keeps no diff base in annotations.
    """

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return
