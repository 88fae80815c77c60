"""``when`` conditions of a search space: a tiny, safe subset of Python expressions.

    when: "layer in placement.pdcr"            # a per-layer template: only layers PDCR is placed on
    when: "len(placement.uafr) > 0"            # only when UAFR is placed somewhere
    when: "model.name == 'unet' and train.lr < 0.01"

Allowed: parameter names (dotted, declared earlier in the space), ``layer`` (inside a
``{layer}`` template), literals (numbers, quoted strings, true/false/none, lists),
``== != < <= > >= in not in``, ``and or not``, parentheses and ``len(x)``. A parameter that
was not suggested (its own condition was false) reads as ``None``: ``x in None`` is false,
``len(None)`` is 0 and an ordering comparison with ``None`` is false.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Any

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_GRAMMAR = ("parameter names, 'layer', literals, == != < <= > >= in, not in, and, or, not, "
            "parentheses and len(x)")
_LITERALS = {"true": True, "false": False, "none": None, "null": None}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` as written (a Name, or an Attribute chain on a Name), else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


@dataclass(frozen=True)
class Condition:
    """A parsed ``when`` expression. ``names``: the parameter names it reads (``layer`` excluded)."""

    text: str
    tree: ast.Expression
    names: tuple[str, ...]
    uses_layer: bool

    def __call__(self, values: dict, layer: str | None = None) -> bool:
        """Evaluate against ``values`` (param name -> value; absent = None) with ``layer`` bound."""
        return bool(_eval(self.tree.body, values, layer))


def parse_condition(text: str) -> Condition:
    """Parse ``text``; raises ``ValueError`` naming what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a condition must be a non-empty string, but got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot parse condition {text!r}: {err.msg}; conditions use {_GRAMMAR}") from None
    names: list[str] = []
    uses_layer = False

    def check(node: ast.AST) -> None:
        nonlocal uses_layer
        name = _dotted(node)
        if name is not None:
            if name == "layer":
                uses_layer = True
            elif name.lower() not in _LITERALS and name not in names:
                names.append(name)
            return
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            for child in (node.values if isinstance(node, ast.BoolOp) else [node.operand]):
                check(child)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand,
                                                                                             ast.Constant):
            pass
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE and not isinstance(op, (ast.In, ast.NotIn)):
                    raise ValueError(f"condition {text!r}: operator {type(op).__name__} is not allowed; "
                                     f"conditions use {_GRAMMAR}")
            for child in [node.left, *node.comparators]:
                check(child)
        elif isinstance(node, ast.Constant):
            pass
        elif isinstance(node, (ast.List, ast.Tuple)):
            for child in node.elts:
                check(child)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
              and len(node.args) == 1 and not node.keywords):
            check(node.args[0])
        else:
            raise ValueError(f"condition {text!r}: {type(node).__name__} is not allowed; conditions use {_GRAMMAR}")

    check(tree.body)
    return Condition(text=text, tree=tree, names=tuple(names), uses_layer=uses_layer)


def _eval(node: ast.AST, values: dict, layer: str | None) -> Any:
    name = _dotted(node)
    if name is not None:
        if name == "layer":
            return layer
        if name.lower() in _LITERALS:
            return _LITERALS[name.lower()]
        return values.get(name)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return not _eval(node.operand, values, layer)
        value = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if not isinstance(value, (int, float, complex)):  # parse_condition allows only -<constant>
            raise TypeError(f"a unary minus applies to a number only, not {ast.unparse(node.operand)}")
        return -value
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values, layer) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, values, layer) for e in node.elts]
    if isinstance(node, ast.Call):  # len(x); only len passes parse_condition
        value = _eval(node.args[0], values, layer)
        return 0 if value is None else len(value)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values, layer)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, values, layer)
            if isinstance(op, (ast.In, ast.NotIn)):
                inside = right is not None and left in right
                ok = inside if isinstance(op, ast.In) else not inside
            elif type(op) in (ast.Eq, ast.NotEq):
                ok = _COMPARE[type(op)](left, right)
            else:
                try:
                    ok = left is not None and right is not None and _COMPARE[type(op)](left, right)
                except TypeError:
                    ok = False
            if not ok:
                return False
            left = right
        return True
    raise AssertionError(f"unreachable: {type(node).__name__}")  # parse_condition admits nothing else


__all__ = ["Condition", "parse_condition"]
