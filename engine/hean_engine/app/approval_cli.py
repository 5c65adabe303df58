"""`hean approval keygen|sign|verify`: what the people who approve live trading run.

Everything works offline from files (`--engine-file`), so an approver can
sign on a machine that has no cluster access; `sign --engine NAME -n NS`
reads the engine from the cluster through the operator package instead.
Private keys are read from their file and used in memory only: no output,
log line or error message contains them.

Exit status: 0 done (verify: valid), 1 refused (verify: not valid) or a
runtime failure, 2 bad input (the flag or field named on stderr).
"""

from __future__ import annotations

import importlib
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_manifest
from hean_engine.app.exits import EXIT_RUNTIME, user_errors
from hean_engine.approval.manifest import Approval, approval_manifest, parse_approval
from hean_engine.approval.payload import parse_time, spec_hash
from hean_engine.approval.sign import add_signature, generate_key, load_private_key, new_approval
from hean_engine.approval.trust import DEFAULT_MAX_TTL, load_trust_dir
from hean_engine.approval.trust import parse_duration as parse_trust_duration
from hean_engine.approval.verify import Verdict, verify
from hean_engine.model.errors import ConfigError, HeanError
from hean_engine.model.yamltext import dump_yaml, load_documents, read_text


def parse_duration(text: str, flag: str) -> timedelta:
    """`8h`, `30m`, `2d`, `90s` or a sum like `1h30m`; ConfigError naming `flag` otherwise."""
    return parse_trust_duration(text, flag)


def parse_moment(text: str, flag: str) -> datetime:
    """An RFC 3339 time with an offset (`2026-01-31T12:00:00Z`, `...+01:00`), as UTC."""
    moment: datetime | None
    try:
        parsed = datetime.fromisoformat(text)
        moment = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:00:00-01:00
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(
            [f"{flag}: {text!r} is not an RFC 3339 time with an offset, like 2026-01-31T12:00:00Z"]
        )
    return moment


def _read_yaml(path: Path, flag: str) -> Any:
    documents = load_documents(read_text(path, flag), f"{flag}: {path}")
    if len(documents) != 1:
        raise ConfigError([f"{flag}: {path} must hold exactly one document"])
    return documents[0]


def _engine_from_manifest(
    manifest: Any, flag: str, uid: str | None, namespace: str | None
) -> tuple[EngineIdentity, TradingEngineSpec]:
    """The engine's identity and spec, from a TradingEngine manifest (file or cluster)."""
    if not isinstance(manifest, dict) or "spec" not in manifest:
        raise ConfigError([f"{flag}: expected a TradingEngine manifest (with metadata and spec)"])
    meta = manifest.get("metadata") or {}
    identity, spec = parse_manifest(manifest)
    if namespace is not None:
        if isinstance(meta, dict) and meta.get("namespace") not in (None, namespace):
            theirs = meta["namespace"]
            raise ConfigError([f"-n: {namespace!r} differs from metadata.namespace {theirs!r}"])
        identity = identity.model_copy(update={"namespace": namespace})
    if uid:
        if identity.uid and identity.uid != uid:
            raise ConfigError([f"--uid: {uid!r} differs from the file's metadata.uid"])
        identity = identity.model_copy(update={"uid": uid})
    if not identity.uid:
        raise ConfigError(
            [
                "--uid: required (the engine's metadata.uid: "
                "kubectl get tradingengine NAME -o jsonpath='{.metadata.uid}')"
            ]
        )
    return identity, spec


def _fetch_from_cluster(name: str, namespace: str, kubeconfig: Path | None) -> dict[str, Any]:
    # Imported by name at run time: the engine package never depends on the
    # operator's (it needs the Kubernetes client, an extra).
    try:
        module = importlib.import_module("hean_operator.approval_cli")
        fetch = module.fetch_engine
    except (ImportError, AttributeError):
        raise HeanError(
            "--engine: reading the engine from the cluster needs the operator extra "
            "(pip install 'hean[operator]'); or use --engine-file FILE --uid UID"
        ) from None
    manifest = fetch(name, namespace, str(kubeconfig) if kubeconfig is not None else None)
    if not isinstance(manifest, dict):
        raise HeanError(f"--engine: no TradingEngine {namespace}/{name}")
    return manifest


@click.group()
def approval() -> None:
    """Sign and check LiveApprovals: keys, signatures, verification (see docs/security.md)."""


@approval.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for KEY_ID.key (private, mode 0600) and KEY_ID.pub (public).",
)
@click.option("--key-id", help="The key's id (file names and signatures); default: random.")
def keygen(out_dir: Path, key_id: str | None) -> None:
    """Generate an Ed25519 key pair. Prints the file names only, never the private key."""
    key_id = key_id or f"key-{secrets.token_hex(4)}"
    with user_errors():
        private_path, public_path = generate_key(out_dir, key_id)
    click.echo(f"key id:      {key_id}")
    click.echo(f"private key: {private_path} (mode 0600; keep it secret, never share it)")
    click.echo(f"public key:  {public_path} (add it to the trust directory)")


_engine_file_option = click.option(
    "--engine-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The TradingEngine manifest (e.g. kubectl get tradingengine NAME -o yaml).",
)
_uid_option = click.option("--uid", help="The engine's metadata.uid (when the file has none).")


@approval.command()
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Your private key file (KEY_ID.key from keygen).",
)
@click.option("--engine", "engine_name", help="The TradingEngine's name (read from the cluster).")
@click.option("-n", "--namespace", help="The engine's namespace (with --engine).")
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --engine: the kubeconfig (default: the usual lookup).",
)
@_engine_file_option
@_uid_option
@click.option("--ttl", help="How long the approval is valid: 8h, 30m, 2d (not with --approval).")
@click.option("--not-before", help="Valid from this RFC 3339 time (default: now).")
@click.option(
    "--approval",
    "approval_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Add your signature to this existing approval instead of starting a new one.",
)
def sign(
    key_path: Path,
    engine_name: str | None,
    namespace: str | None,
    kubeconfig: Path | None,
    engine_file: Path | None,
    uid: str | None,
    ttl: str | None,
    not_before: str | None,
    approval_path: Path | None,
) -> None:
    """Sign an approval for one engine and its current spec; prints the LiveApproval YAML.

    The engine is named either from the cluster (--engine NAME -n NS) or by
    its manifest file (--engine-file FILE, with --uid when the file has no
    metadata.uid). With --approval the engine is still required: you sign
    only what you checked is about that engine and its current spec.
    """
    with user_errors():
        if (engine_name is None) == (engine_file is None):
            raise ConfigError(["--engine/--engine-file: give exactly one"])
        if engine_name is not None:
            if namespace is None:
                raise ConfigError(["-n: required with --engine"])
            manifest = _fetch_from_cluster(engine_name, namespace, kubeconfig)
            identity, spec = _engine_from_manifest(manifest, "--engine", uid, namespace)
        else:
            assert engine_file is not None
            manifest = _read_yaml(engine_file, "--engine-file")
            identity, spec = _engine_from_manifest(manifest, "--engine-file", uid, namespace)
        now = datetime.now(UTC)
        if approval_path is not None:
            if ttl is not None or not_before is not None:
                raise ConfigError(
                    ["--ttl/--not-before: not with --approval (its window is signed already)"]
                )
            existing = _load_approval(approval_path)
            _check_binding(existing, identity, spec, now)
        else:
            if ttl is None:
                raise ConfigError(["--ttl: required (how long the approval is valid, e.g. 8h)"])
            window = parse_duration(ttl, "--ttl")
            if window > DEFAULT_MAX_TTL:
                click.echo(
                    f"warning: --ttl {ttl} is longer than the default maxTtl of "
                    f"{DEFAULT_MAX_TTL.days}d: verifiers refuse it unless their trust "
                    "policy's maxTtl allows it",
                    err=True,
                )
            existing = new_approval(
                namespace=identity.namespace,
                engine=identity.name,
                engine_uid=identity.uid,
                spec=spec,
                ttl=window,
                now=now,
                not_before=parse_moment(not_before, "--not-before") if not_before else None,
            )
        key_id, key = load_private_key(key_path)
        signed = add_signature(existing, key_id, key)
    click.echo(dump_yaml(approval_manifest(signed)), nl=False)


def _load_approval(path: Path) -> Approval:
    try:
        return parse_approval(_read_yaml(path, "--approval"))
    except ConfigError as exc:
        raise ConfigError([f"{path}: {problem}" for problem in exc.problems]) from None


def _check_binding(
    existing: Approval, identity: EngineIdentity, spec: TradingEngineSpec, now: datetime
) -> None:
    """Refuse to co-sign an approval that is not about this engine as it is now."""
    payload = existing.payload
    wanted = {
        "namespace": (payload.namespace, identity.namespace),
        "engine": (payload.engine, identity.name),
        "engineUid": (payload.engine_uid, identity.uid),
        "specHash": (payload.spec_hash, spec_hash(spec)),
    }
    for field, (theirs, ours) in wanted.items():
        if theirs != ours:
            raise HeanError(
                f"refusing to sign: the approval's {field} is {theirs!r}, the engine's is {ours!r}"
            )
    try:
        expired = now >= parse_time(payload.expires_at)
    except ValueError as exc:
        raise ConfigError([f"--approval: spec.expiresAt: {exc}"]) from None
    if expired:
        raise HeanError(f"refusing to sign: the approval expired at {payload.expires_at}")


@approval.command(name="verify")
@click.argument("approval_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--trusted-keys",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The trust directory: KEY_ID.pub files and an optional policy.yaml.",
)
@click.option(
    "--engine-file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The TradingEngine manifest the approval must be for.",
)
@_uid_option
@click.option("--at", "at", help="Check at this RFC 3339 time instead of now.")
def verify_command(
    approval_file: Path, trusted_keys: Path, engine_file: Path, uid: str | None, at: str | None
) -> None:
    """Check an approval exactly as the operator and the engine do: exit 0 valid, 1 not."""
    with user_errors():
        approval_value = _load_approval(approval_file)
        identity, spec = _engine_from_manifest(
            _read_yaml(engine_file, "--engine-file"), "--engine-file", uid, None
        )
        try:
            policy = load_trust_dir(trusted_keys)
        except ConfigError as exc:
            raise ConfigError([f"--trusted-keys: {p}" for p in exc.problems]) from None
        now = parse_moment(at, "--at") if at else datetime.now(UTC)
        verdict = verify(
            approval_value,
            policy,
            namespace=identity.namespace,
            engine=identity.name,
            engine_uid=identity.uid,
            spec=spec,
            now=now,
        )
    click.echo(_verdict_line(verdict))
    if not verdict.valid:
        sys.exit(EXIT_RUNTIME)


def _verdict_line(verdict: Verdict) -> str:
    keys = f" [keys: {', '.join(verdict.key_ids)}]" if verdict.key_ids else ""
    return f"{verdict.reason.value}: {verdict.message}{keys}"
