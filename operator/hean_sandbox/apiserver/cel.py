"""A small evaluator for the CEL subset CRD `x-kubernetes-validations` rules use.

Supported: literals (int, double, string, bool, null, lists, maps), `self` and
`oldSelf`, field selection and indexing, `has()`, the operators `! - * / % + -
< <= > >= == != in && || ?:` (with CEL's error-absorbing `&&`/`||`), the
functions `size int uint double string bool`, the string methods `startsWith
endsWith contains matches lowerAscii upperAscii trim`, and the macros `all
exists exists_one map filter`. A rule using anything else fails to compile
with `CelUnsupported`; the server then skips it (see docs/sandbox.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class CelUnsupported(Exception):
    """The rule uses syntax or functions this evaluator does not have."""


class CelError(Exception):
    """A runtime error while evaluating a rule (for example `no such key`)."""


# -- lexer ---------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<float>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>0x[0-9a-fA-F]+[uU]?|\d+[uU]?)
  | (?P<string>[rR]?'(?:\\.|[^'\\])*'|[rR]?"(?:\\.|[^"\\])*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[!<>+\-*/%?:.,\[\](){}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def _tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN_RE.match(source, position)
        if not match:
            raise CelUnsupported(f"cannot tokenize at {source[position : position + 10]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group()))
    tokens.append(Token("eof", ""))
    return tokens


def _unquote(text: str) -> str:
    raw = text[0] in "rR"
    body = text[2:-1] if raw else text[1:-1]
    if raw:
        return body
    return re.sub(
        r"\\(.)",
        lambda m: {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}.get(
            m.group(1), m.group(1)
        ),
        body,
    )


# -- AST -----------------------------------------------------------------------------

Node = tuple[Any, ...]
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_FUNCTIONS = {"size", "int", "uint", "double", "string", "bool"}
_METHODS = {
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "lowerAscii",
    "upperAscii",
    "trim",
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.position = 0

    def peek(self) -> Token:
        return self.tokens[self.position]

    def take(self, text: str | None = None) -> Token:
        token = self.tokens[self.position]
        if text is not None and token.text != text:
            raise CelUnsupported(f"expected {text!r}, got {token.text!r}")
        self.position += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek().text == text and self.peek().kind in ("op", "ident"):
            self.position += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.expr()
        if self.peek().kind != "eof":
            raise CelUnsupported(f"unexpected {self.peek().text!r}")
        return node

    def expr(self) -> Node:
        condition = self.or_()
        if self.accept("?"):
            then = self.or_()
            self.take(":")
            otherwise = self.expr()
            return ("cond", condition, then, otherwise)
        return condition

    def or_(self) -> Node:
        node = self.and_()
        while self.accept("||"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.relation()
        while self.accept("&&"):
            node = ("and", node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.additive()
        while True:
            token = self.peek()
            if token.text in ("<", "<=", ">", ">=", "==", "!=") and token.kind == "op":
                self.take()
                node = ("binop", token.text, node, self.additive())
            elif token.kind == "ident" and token.text == "in":
                self.take()
                node = ("binop", "in", node, self.additive())
            else:
                return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take().text
            node = ("binop", op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek().text in ("*", "/", "%") and self.peek().kind == "op":
            op = self.take().text
            node = ("binop", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("!"):
            return ("not", self.unary())
        if self.accept("-"):
            return ("neg", self.unary())
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                name = self.take().text
                if self.peek().text == "(":
                    self.take("(")
                    args = self.arguments(")")
                    if name in _MACROS:
                        if len(args) != 2 or args[0][0] != "ident":
                            raise CelUnsupported(f"bad macro {name}")
                        node = ("macro", name, node, args[0][1], args[1])
                    elif name in _METHODS:
                        node = ("method", name, node, args)
                    else:
                        raise CelUnsupported(f"unsupported method {name}()")
                else:
                    node = ("select", node, name)
            elif self.accept("["):
                index = self.expr()
                self.take("]")
                node = ("index", node, index)
            else:
                return node

    def arguments(self, closing: str) -> list[Node]:
        args: list[Node] = []
        if self.accept(closing):
            return args
        while True:
            args.append(self.expr())
            if self.accept(closing):
                return args
            self.take(",")

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "int":
            text = token.text.rstrip("uU")
            return ("lit", int(text, 16) if text.startswith("0x") else int(text))
        if token.kind == "float":
            return ("lit", float(token.text))
        if token.kind == "string":
            return ("lit", _unquote(token.text))
        if token.kind == "ident":
            if token.text in ("true", "false"):
                return ("lit", token.text == "true")
            if token.text == "null":
                return ("lit", None)
            if self.peek().text == "(":
                self.take("(")
                args = self.arguments(")")
                if token.text == "has":
                    if len(args) != 1 or args[0][0] != "select":
                        raise CelUnsupported("has() needs a field selection")
                    return ("has", args[0][1], args[0][2])
                if token.text in _FUNCTIONS:
                    return ("call", token.text, args)
                raise CelUnsupported(f"unsupported function {token.text}()")
            return ("ident", token.text)
        if token.text == "(":
            node = self.expr()
            self.take(")")
            return node
        if token.text == "[":
            return ("list", self.arguments("]"))
        if token.text == "{":
            entries: list[tuple[Node, Node]] = []
            if not self.accept("}"):
                while True:
                    key = self.expr()
                    self.take(":")
                    entries.append((key, self.expr()))
                    if self.accept("}"):
                        break
                    self.take(",")
            return ("map", entries)
        raise CelUnsupported(f"unexpected {token.text!r}")


# -- evaluation ----------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "null_type"


def _no_overload(op: str, *values: Any) -> CelError:
    types = ", ".join(_type_name(v) for v in values)
    return CelError(f"no such overload: {op}({types})")


class _Evaluator:
    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env

    def eval(self, node: Node) -> Any:
        handler: Callable[[Node], Any] = getattr(self, f"_{node[0]}")
        return handler(node)

    def _lit(self, node: Node) -> Any:
        return node[1]

    def _ident(self, node: Node) -> Any:
        if node[1] not in self.env:
            raise CelError(f"undeclared reference to '{node[1]}'")
        return self.env[node[1]]

    def _list(self, node: Node) -> Any:
        return [self.eval(item) for item in node[1]]

    def _map(self, node: Node) -> Any:
        return {self.eval(k): self.eval(v) for k, v in node[1]}

    def _select(self, node: Node) -> Any:
        target = self.eval(node[1])
        if not isinstance(target, dict):
            raise _no_overload("_._", target)
        if node[2] not in target:
            raise CelError(f"no such key: {node[2]}")
        return target[node[2]]

    def _has(self, node: Node) -> Any:
        target = self.eval(node[1])
        if not isinstance(target, dict):
            raise _no_overload("has", target)
        return node[2] in target

    def _index(self, node: Node) -> Any:
        target, index = self.eval(node[1]), self.eval(node[2])
        if isinstance(target, list):
            if not _is_number(index) or int(index) != index:
                raise _no_overload("_[_]", target, index)
            if not 0 <= int(index) < len(target):
                raise CelError(f"index out of bounds: {index}")
            return target[int(index)]
        if isinstance(target, dict):
            if index not in target:
                raise CelError(f"no such key: {index}")
            return target[index]
        raise _no_overload("_[_]", target, index)

    def _not(self, node: Node) -> Any:
        value = self.eval(node[1])
        if not isinstance(value, bool):
            raise _no_overload("!_", value)
        return not value

    def _neg(self, node: Node) -> Any:
        value = self.eval(node[1])
        if not _is_number(value):
            raise _no_overload("-_", value)
        return -value

    def _logic(self, node: Node, stop: bool) -> Any:
        error: CelError | None = None
        for side in (node[1], node[2]):
            try:
                value = self.eval(side)
            except CelError as exc:
                error = error or exc
                continue
            if not isinstance(value, bool):
                error = error or _no_overload("_&&_" if not stop else "_||_", value)
                continue
            if value is stop:
                return stop
        if error is not None:
            raise error
        return not stop

    def _and(self, node: Node) -> Any:
        return self._logic(node, False)

    def _or(self, node: Node) -> Any:
        return self._logic(node, True)

    def _cond(self, node: Node) -> Any:
        condition = self.eval(node[1])
        if not isinstance(condition, bool):
            raise _no_overload("_?_:_", condition)
        return self.eval(node[2] if condition else node[3])

    def _binop(self, node: Node) -> Any:
        op, left, right = node[1], self.eval(node[2]), self.eval(node[3])
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op == "in":
            if isinstance(right, list):
                return any(_equal(left, item) for item in right)
            if isinstance(right, dict):
                return left in right
            raise _no_overload("@in", left, right)
        if op in ("<", "<=", ">", ">="):
            comparable = (_is_number(left) and _is_number(right)) or (
                type(left) is type(right) and isinstance(left, str | bool)
            )
            if not comparable:
                raise _no_overload(f"_{op}_", left, right)
            return {
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[op]
        return _arithmetic(op, left, right)

    def _call(self, node: Node) -> Any:
        name, args = node[1], [self.eval(arg) for arg in node[2]]
        if len(args) != 1:
            raise _no_overload(name, *args)
        return _convert(name, args[0])

    def _method(self, node: Node) -> Any:
        name, target = node[1], self.eval(node[2])
        args = [self.eval(arg) for arg in node[3]]
        if name == "size" and not args:
            return _convert("size", target)
        if not isinstance(target, str) or not all(isinstance(a, str) for a in args):
            raise _no_overload(name, target, *args)
        if name in ("lowerAscii", "upperAscii", "trim") and not args:
            return {"lowerAscii": target.lower, "upperAscii": target.upper, "trim": target.strip}[
                name
            ]()
        if len(args) != 1:
            raise _no_overload(name, target, *args)
        arg = args[0]
        if name == "startsWith":
            return target.startswith(arg)
        if name == "endsWith":
            return target.endswith(arg)
        if name == "contains":
            return arg in target
        try:
            return re.search(arg, target) is not None
        except re.error as exc:
            raise CelError(f"invalid regex: {exc}") from exc

    def _macro(self, node: Node) -> Any:
        name, target, var, body = node[1], self.eval(node[2]), node[3], node[4]
        if isinstance(target, dict):
            items = list(target)
        elif isinstance(target, list):
            items = target
        else:
            raise _no_overload(name, target)

        def run(item: Any) -> Any:
            saved = self.env.get(var, _MISSING)
            self.env[var] = item
            try:
                return self.eval(body)
            finally:
                if saved is _MISSING:
                    del self.env[var]
                else:
                    self.env[var] = saved

        if name == "map":
            return [run(item) for item in items]
        results = [(item, run(item)) for item in items]
        for _, value in results:
            if not isinstance(value, bool):
                raise _no_overload(name, value)
        if name == "all":
            return all(value for _, value in results)
        if name == "exists":
            return any(value for _, value in results)
        if name == "exists_one":
            return sum(1 for _, value in results if value) == 1
        return [item for item, value in results if value]


_MISSING = object()


def _equal(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and type(left) is type(right) and isinstance(left, str | list):
        return left + right
    if not (_is_number(left) and _is_number(right)) or type(left) is not type(right):
        raise _no_overload(f"_{op}_", left, right)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0 and isinstance(left, int):
        raise CelError("division by zero" if op == "/" else "modulus by zero")
    if isinstance(left, float):
        if op == "%":
            raise _no_overload("_%_", left, right)
        return left / right
    quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
    return quotient if op == "/" else left - right * quotient


def _convert(name: str, value: Any) -> Any:
    try:
        if name == "size":
            if isinstance(value, str | list | dict):
                return len(value)
        elif name in ("int", "uint"):
            if isinstance(value, bool):
                raise _no_overload(name, value)
            if isinstance(value, int | float):
                return int(value)
            if isinstance(value, str):
                return int(value)
        elif name == "double":
            if _is_number(value) or isinstance(value, str):
                return float(value)
        elif name == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float | str):
                return str(value)
        elif name == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value in ("true", "false"):
                return value == "true"
    except ValueError as exc:
        raise CelError(f"{name}() conversion error: {exc}") from exc
    raise _no_overload(name, value)


@dataclass(frozen=True)
class Program:
    """A compiled rule."""

    source: str
    ast: Node
    uses_old_self: bool

    def evaluate(self, value: Any, old_value: Any = _MISSING) -> Any:
        env: dict[str, Any] = {"self": value}
        if old_value is not _MISSING:
            env["oldSelf"] = old_value
        return _Evaluator(env).eval(self.ast)


@lru_cache(maxsize=512)
def compile_rule(source: str) -> Program:
    """Compile a rule; raises `CelUnsupported` for what this evaluator cannot run."""
    ast = _Parser(source).parse()
    return Program(source, ast, "oldSelf" in _identifiers(ast))


def _identifiers(node: Any) -> set[str]:
    if isinstance(node, tuple):
        if node and node[0] == "ident":
            return {node[1]}
        return set().union(*(_identifiers(part) for part in node)) if node else set()
    if isinstance(node, list):
        return set().union(*(_identifiers(part) for part in node)) if node else set()
    return set()


NO_OLD = _MISSING
