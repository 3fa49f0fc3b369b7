"""Cut expressions on ntuple branches, such as ``"fit_status == 0 and fit_pvalue > 0.001"``.

A cut is a Python expression over per-event branch names with numbers, arithmetic,
comparisons (chained too), ``and``, ``or``, ``not`` and ``abs(...)``; nothing else is
evaluated, so a configuration file cannot run code.
"""

from __future__ import annotations

import ast
import operator

import numpy as np

from .errors import ConfigError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _parse(expression: str, kind: str = "cut") -> ast.Expression:
    try:
        return ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ConfigError(f"{kind} {expression!r} is not a valid expression: {error.msg}") from None


def branches_used(expression: str) -> set[str]:
    """Branch names an expression refers to."""
    if not expression.strip():
        return set()
    tree = _parse(expression)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id != "abs"}


def evaluate_cut(expression: str, branches: dict[str, np.ndarray], n_events: int) -> np.ndarray:
    """Boolean mask of the events passing ``expression`` (all of them when it is empty).

    Raises
    ------
    ConfigError
        The expression is malformed, uses something else than the allowed operations, names
        a branch that is missing or not one value per event.
    """
    if not expression.strip():
        return np.ones(n_events, dtype=bool)
    with np.errstate(invalid="ignore"):
        mask = np.broadcast_to(np.asarray(_evaluate(expression, branches, n_events, "cut"), dtype=bool), (n_events,))
    return mask.copy()


def evaluate_expression(expression: str, branches: dict[str, np.ndarray], n_events: int) -> np.ndarray:
    """The value of an arithmetic ``expression`` of branches (``"gamma0_E"``, ``"1e3 * x"``) per
    event, as float64; the same operations as a cut.

    Raises
    ------
    ConfigError
        As :func:`evaluate_cut`; an empty expression too.
    """
    if not expression.strip():
        raise ConfigError("an empty expression has no value")
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.asarray(_evaluate(expression, branches, n_events, "expression"), dtype=np.float64)
    return np.broadcast_to(value, (n_events,)).copy()


def _evaluate(expression: str, branches: dict[str, np.ndarray], n_events: int, kind: str):
    """The value of ``expression``; ``kind`` ("cut", "expression") names it in errors."""

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in branches:
                raise ConfigError(f"{kind} {expression!r}: no branch {node.id!r}")
            array = np.asarray(branches[node.id])
            if array.shape != (n_events,):
                raise ConfigError(f"{kind} {expression!r}: branch {node.id!r} is not one value per event")
            return array
        if isinstance(node, ast.BoolOp):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            result = value(node.values[0])
            for other in node.values[1:]:
                result = combine(result, value(other))
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            operand = value(node.operand)
            return np.logical_not(operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left, result = value(node.left), True
            for op, comparator in zip(node.ops, node.comparators):
                right = value(comparator)
                result = np.logical_and(result, _COMPARE[type(op)](left, right))
                left = right
            return result
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "abs"
            and len(node.args) == 1
            and not node.keywords
        ):
            return np.abs(value(node.args[0]))
        raise ConfigError(f"{kind} {expression!r}: {ast.unparse(node)!r} is not allowed in a {kind}")

    return value(_parse(expression, kind))
