"""Reading YAML the one strict way: every file the engine reads (configs, approvals, trust policy).

PyYAML reads YAML 1.1, where `010` is 8, `1:30` is 90 and `on` is true, while
YAML 1.2 (and most people) read 10, a string and a string; Kubernetes' own
reader (go-yaml) follows 1.1 on some of these. A value whose meaning depends on
the reader is refused with its line and a hint (quote it), never guessed:

- numbers with a leading zero (`010`), underscores (`1_000`), base 60 (`1:30`)
  or in binary (`0b101`), and the 1.1-only booleans (`yes`, `no`, `on`, `off`)
  are errors;
- other plain scalars resolve as in both versions: null, true/false, decimal
  and hex integers, floats with a dot, `.inf`, `.nan`; an unquoted timestamp
  is a time, as PyYAML and Kubernetes read it (the same instant either way).

A float is read as the exact `Decimal` of its text (`0.12345678901234567890`
keeps every digit): money is never parsed through a binary float. Also refused:
a duplicate key (YAML forbids it; PyYAML kept the last), aliases (`*name`: a
few bytes could expand into gigabytes), nesting deeper than `MAX_DEPTH`, and
text that is not UTF-8 (a UTF-16 file is named as such).
"""

from __future__ import annotations

import codecs
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from hean_engine.model.errors import ConfigError, UnreadableError

MAX_DEPTH = 64
# Far beyond any configuration or approval; a bigger file is refused unread.
MAX_BYTES = 4 * 1024 * 1024

_AMBIGUOUS_TAG = "tag:hean.io,2026:ambiguous"
_AMBIGUOUS = re.compile(
    r"""^(?:
        [-+]?0[0-9_]+(?:\.[0-9_]*)?(?:[eE][-+][0-9]+)?   # leading zero: octal in 1.1
      | [-+]?[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?           # underscores: a number in 1.1 only
      | [-+]?[0-9]*\.[0-9]*_[0-9_]*                        # underscores after the dot
      | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?  # base 60: a number in 1.1 only
      | [-+]?0b[0-1_]+                                     # binary: 1.1 only
      | yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF         # booleans in 1.1 only
    )$""",
    re.X,
)


class _Resolver(yaml.resolver.BaseResolver):
    """The implicit types YAML 1.1 and 1.2 agree on, plus the ambiguous forms (refused)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (PyYAML's class attribute)


def _resolver(tag: str, regexp: re.Pattern[str], first: list[str]) -> None:
    _Resolver.add_implicit_resolver(tag, regexp, first)


_resolver(_AMBIGUOUS_TAG, _AMBIGUOUS, list("-+0123456789yYnNoO"))
_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# (The empty plain scalar, `key:` with nothing after it, is null: first character "".)
_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), [*"~nN", ""])
_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_resolver(
    "tag:yaml.org,2002:timestamp",
    re.compile(
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        re.X,
    ),
    list("0123456789"),
)


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_float(self, node: Node) -> Any:
        assert isinstance(node, ScalarNode)
        text = str(node.value)
        if text.lower().lstrip("+-") in (".inf", ".nan"):
            return super().construct_yaml_float(node)
        try:
            return Decimal(text)
        except InvalidOperation:  # the resolver's pattern makes this unreachable
            raise ConstructorError(
                None, None, f"{text!r} is not a number", node.start_mark
            ) from None

    def construct_timestamp(self, node: Node) -> Any:
        try:
            return self.construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except (ValueError, OverflowError):
            raise ConstructorError(
                None, None, f"{node.value!r} is not a valid time", node.start_mark
            ) from None

    def construct_ambiguous(self, node: Node) -> Any:
        raise ConstructorError(
            None,
            None,
            f"{node.value!r} means different things in YAML 1.1 and 1.2 (a number or boolean, "
            "or text): quote it if it is text, or write a plain decimal number, true or false",
            node.start_mark,
        )

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        assert isinstance(node, MappingNode)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (YAML forbids it; which value was meant?)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# A copy: PyYAML's own SafeConstructor (used by other code) is left as it is.
_Constructor.yaml_constructors = dict(yaml.constructor.SafeConstructor.yaml_constructors)
_Constructor.yaml_constructors["tag:yaml.org,2002:float"] = _Constructor.construct_yaml_float
_Constructor.yaml_constructors[_AMBIGUOUS_TAG] = _Constructor.construct_ambiguous
_Constructor.yaml_constructors["tag:yaml.org,2002:timestamp"] = _Constructor.construct_timestamp
# Explicit tags beyond these (`!!binary`, `!!set`, ...): refused.
for _tag in (
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:set",
    "tag:yaml.org,2002:omap",
    "tag:yaml.org,2002:pairs",
):
    _Constructor.yaml_constructors.pop(_tag, None)


class StrictLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _Constructor,
    _Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            problem = "aliases (*name) are not supported: write the value out"
            raise ComposerError(None, None, problem, event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


_STRICT = _Resolver()


class StrictDumper(yaml.SafeDumper):
    """Writes what `StrictLoader` and YAML 1.1 readers read back alike.

    A string that either would read as something else (`1e3` is a float in
    1.2, `010` a number in 1.1) is quoted.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        if kind is ScalarNode and tag == "tag:yaml.org,2002:str" and implicit[0]:
            strict = _STRICT.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if strict != tag:
                return strict
        return tag


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", format(value, "f"))


StrictDumper.add_representer(Decimal, _represent_decimal)


def dump_yaml(value: Any) -> str:
    """YAML that `load_documents` reads back as `value` (decimals are written as strings)."""
    return yaml.dump(value, Dumper=StrictDumper, sort_keys=False, allow_unicode=True)


def decode_text(data: bytes, where: str) -> str:
    """UTF-8 text (a byte order mark is allowed); anything else is a ConfigError naming `where`."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ConfigError([f"{where}: the file is UTF-32; save it as UTF-8"])
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError([f"{where}: the file is UTF-16; save it as UTF-8"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{where}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8"]
        ) from None


def read_text(path: Path, where: str) -> str:
    """A file's UTF-8 text; ConfigError (never an exception of another kind) otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        raise ConfigError([f"{where}: cannot read {path}: {exc.strerror or exc}"]) from None
    except OSError as exc:
        raise UnreadableError([f"{where}: cannot read {path}: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{where}: {path} is larger than {MAX_BYTES // (1024 * 1024)} MiB"])
    return decode_text(data, where)


def _describe(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{problem}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_documents(text: str | bytes, where: str) -> list[Any]:
    """Every non-empty document of `text`, read strictly; ConfigError naming `where` otherwise."""
    if isinstance(text, bytes):
        text = decode_text(text, where)
    loader: StrictLoader | None = None
    try:
        loader = StrictLoader(text)  # the reader checks the characters here already
        documents = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            document = loader.get_data()
            if document is not None:
                documents.append(document)
        return documents
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where} is not valid YAML: {_describe(exc)}"]) from None
    except RecursionError:  # a flow collection the depth limit did not see
        raise ConfigError([f"{where} is not valid YAML: nested too deeply"]) from None
    except (ValueError, OverflowError, TypeError) as exc:  # a constructor's own check
        raise ConfigError([f"{where} is not valid YAML: {type(exc).__name__}: {exc}"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_one(text: str | bytes, where: str, *, empty: Any = ...) -> Any:
    """The one document of `text` (`empty` if given and there is none)."""
    documents = load_documents(text, where)
    if not documents and empty is not ...:
        return empty
    if len(documents) != 1:
        raise ConfigError([f"{where}: must hold exactly one document, found {len(documents)}"])
    return documents[0]
