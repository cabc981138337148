"""GitHub Actions expressions, evaluated the way the runner does, for the workflow tests.

Grammar and semantics follow "Evaluate expressions in workflows and actions"
(https://docs.github.com/en/actions/reference/workflows-and-actions/expressions):
literals (null, booleans, numbers, '' strings with '' as the escaped quote), property access with
``.``/``[ ]`` and the ``*`` object filter, ``!``, comparisons, ``&&``/``||`` (which return an
operand, not a boolean), string comparison that ignores case, loose equality that converts
mismatched types to numbers, and the functions our workflows call. Anything else raises, so a
workflow that starts using a construct this module does not know fails its tests loudly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(Exception):
    """The expression is malformed or uses something this evaluator does not model."""


class _Filtered(list[Any]):
    """Result of a ``*`` filter: a following property applies to each element."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"cannot read {text[position:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def truthy(value: Any) -> bool:
    """GitHub's truthiness: null, false, 0, NaN and '' are false."""
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if type(left) is type(right) or (left is None and right is None):
        return bool(left == right)
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return left is right
    return _number(left) == _number(right)


def _to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, list):
        return any(_equal(item, needle) for item in haystack)
    return _to_string(needle).lower() in _to_string(haystack).lower()


def _format(template: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)\}", lambda m: _to_string(args[int(m[1])]), template)


class Evaluator:
    """Evaluates expressions against contexts (``github``, ``env``, ``inputs``, ...)."""

    def __init__(self, contexts: Mapping[str, Any], status: str = "success") -> None:
        self.contexts = contexts
        self.status = status  # what success() / failure() see: success, failure or cancelled
        self.functions: dict[str, Callable[..., Any]] = {
            "contains": _contains,
            "startswith": lambda s, p: _to_string(s).lower().startswith(_to_string(p).lower()),
            "endswith": lambda s, p: _to_string(s).lower().endswith(_to_string(p).lower()),
            "format": _format,
            "join": lambda items, sep=",": sep.join(_to_string(i) for i in items),
            "tojson": lambda v: json.dumps(v, indent=2),
            "fromjson": json.loads,
            "success": lambda: self.status == "success",
            "failure": lambda: self.status == "failure",
            "cancelled": lambda: self.status == "cancelled",
            "always": lambda: True,
            "hashfiles": lambda *patterns: "0" * 64,
        }

    def evaluate(self, text: str) -> Any:
        """The value of one expression (without ``${{ }}``)."""
        self._tokens, self._at = _tokens(text), 0
        value = self._or()
        if self._at != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._at][1]!r} in {text!r}")
        return value

    def condition(self, text: str | bool | None) -> bool:
        """An ``if:`` value: implicit ``success() &&`` unless it calls a status function."""
        if text is None:
            return self.status == "success"
        if isinstance(text, bool):
            return text and self.status == "success"
        inner = text.strip()
        if inner.startswith("${{") and inner.endswith("}}"):
            inner = inner[3:-2]
        if not re.search(r"\b(always|failure|cancelled|success)\s*\(", inner):
            inner = f"success() && ({inner})"
        return truthy(self.evaluate(inner))

    def interpolate(self, text: Any) -> Any:
        """A string with ``${{ }}`` parts replaced (a lone expression keeps its type)."""
        if not isinstance(text, str) or "${{" not in text:
            return text
        whole = re.fullmatch(r"\s*\$\{\{(.*?)\}\}\s*", text, re.DOTALL)
        if whole:
            return self.evaluate(whole[1])
        return re.sub(
            r"\$\{\{(.*?)\}\}", lambda m: _to_string(self.evaluate(m[1])), text, flags=re.DOTALL
        )

    # --- recursive descent, lowest precedence first -------------------------------------
    def _peek(self) -> str | None:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self._at >= len(self._tokens):
            raise ExpressionError("unexpected end of expression")
        token = self._tokens[self._at]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, got {token[1]!r}")
        self._at += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        while self._peek() in {"==", "!=", "<", "<=", ">", ">="}:
            op = self._take()[1]
            right = self._unary()
            if op in {"==", "!="}:
                value = _equal(value, right) == (op == "==")
            else:
                a, b = _number(value), _number(right)
                value = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._postfix(self._primary())

    def _primary(self) -> Any:
        kind, text = self._take()
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r}")
        lowered = text.lower()
        if lowered in {"true", "false"}:
            return lowered == "true"
        if lowered == "null":
            return None
        if self._peek() == "(":
            return self._call(lowered)
        if text not in self.contexts:
            raise ExpressionError(f"unknown context {text!r}")
        return self.contexts[text]

    def _call(self, name: str) -> Any:
        if name not in self.functions:
            raise ExpressionError(f"function {name}() is not modelled")
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        return self.functions[name](*args)

    def _postfix(self, value: Any) -> Any:
        while self._peek() in {".", "["}:
            if self._take()[1] == ".":
                kind, key = self._take()
                if key == "*":
                    value = _Filtered(_elements(value))
                    continue
                if kind != "name":
                    raise ExpressionError(f"bad property {key!r}")
            else:
                key = self._or()
                self._take("]")
            value = _property(value, key)
        return value


def _elements(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else []


def _property(value: Any, key: Any) -> Any:
    if isinstance(value, _Filtered):
        return _Filtered(found for item in value if (found := _property(item, key)) is not None)
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        return lowered.get(_to_string(key).lower())
    if isinstance(value, list) and isinstance(key, int | float):
        index = int(key)
        return value[index] if 0 <= index < len(value) else None
    return None
