"""Which image an engine pod runs: the operator's engine image, or the spec's if allowed.

`spec.image` lets a user run an image derived from the HEAN engine image with
their strategy package installed. Running it is running the user's code with
the engine's credentials, so the operator's administrator decides which image
repositories may be used (Helm value `engine.allowedImageRepositories`); the
engine image's own repository is always allowed. An entry ending in `/*`
allows every repository below that path (`registry.example.com/team/*`).

`check_engine_image` is what the reconcile handler calls right after parsing a
spec: a refused image is a `ConfigError` naming `spec.image`, so the engine is
Invalid with that reason and nothing is created. `engine_image_ref` is what
the pod builder uses, and refuses again (a builder never runs an image that
was not allowed, whoever calls it).
"""

from __future__ import annotations

from typing import Protocol

from hean_contract.errors import ConfigError
from hean_contract.spec import TradingEngineSpec


class EngineImageSettings(Protocol):
    """What this module reads of the operator's `EngineImage` (builders.pod, which
    imports this module: a protocol, not an import back)."""

    @property
    def image(self) -> str: ...

    @property
    def allowed_repositories(self) -> tuple[str, ...]: ...


def image_repository(ref: str) -> str:
    """`registry:5000/team/engine:1.2@sha256:…` -> `registry:5000/team/engine`."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def allowed_repositories(image: EngineImageSettings) -> tuple[str, ...]:
    """The operator's own engine repository, then the administrator's additions."""
    own = image_repository(image.image)
    return (own, *(entry for entry in image.allowed_repositories if entry != own))


def _allows(entry: str, repository: str) -> bool:
    if entry.endswith("/*"):
        return repository.startswith(entry[:-1])
    return repository == entry


def check_engine_image(spec: TradingEngineSpec, image: EngineImageSettings) -> None:
    """Refuse a `spec.image` whose repository the operator does not allow (ConfigError)."""
    if spec.image is None:
        return
    repository = image_repository(spec.image)
    allowed = allowed_repositories(image)
    if not any(_allows(entry, repository) for entry in allowed):
        raise ConfigError(
            [
                f"spec.image: the repository {repository!r} is not allowed by this operator "
                f"(allowed: {', '.join(allowed)}); an administrator adds it to the Helm "
                "value engine.allowedImageRepositories"
            ]
        )


def engine_image_ref(spec: TradingEngineSpec, image: EngineImageSettings) -> str:
    """The image reference an engine pod runs (ConfigError for one not allowed)."""
    check_engine_image(spec, image)
    return spec.image if spec.image is not None else image.image
