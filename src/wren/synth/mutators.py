"""Mutators: small named ways to break working code, each found and applied with libcst.

A mutator looks at one node inside a function body and proposes edits: a node to replace and what
replaces it (or None to remove a statement). Mutators are pure and deterministic; which edits are
used is decided elsewhere (with the seed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import libcst as cst

from wren.exceptions import ConfigError
from wren.registry import Registry


@dataclass(frozen=True)
class Edit:
    """Replace `target` (a node of the parsed file) by `replacement`; None removes a statement."""

    target: cst.CSTNode
    replacement: cst.CSTNode | None


@dataclass
class FunctionContext:
    """What a mutator may ask about the function it works in."""

    function: cst.FunctionDef
    line_of: dict[int, int]
    """First line of each node of the function, by id(node)."""
    first_binding: dict[str, int] = field(default_factory=dict)
    """Line where each local name is first bound; parameters count as bound on the `def` line."""

    def bound_before(self, name: str, line: int) -> bool:
        first = self.first_binding.get(name)
        return first is not None and first < line


class Mutator:
    """Base of all mutators; subclasses set `name` and `summary` and implement `edits`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def edits(self, node: cst.CSTNode, parent: cst.CSTNode | None, ctx: FunctionContext) -> Iterable[Edit]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- helpers


def _op_like(new_cls: type[cst.CSTNode], old: cst.CSTNode) -> cst.CSTNode:
    """An operator of `new_cls` that keeps the spacing of `old`."""
    names = {f.name for f in dataclasses.fields(new_cls)}
    kwargs = {n: getattr(old, n) for n in ("whitespace_before", "whitespace_after") if n in names}
    if "whitespace_between" in names and hasattr(old, "whitespace_between"):
        kwargs["whitespace_between"] = old.whitespace_between
    return new_cls(**kwargs)


_LOOSE = (
    cst.BinaryOperation,
    cst.BooleanOperation,
    cst.Comparison,
    cst.UnaryOperation,
    cst.IfExp,
    cst.Lambda,
    cst.NamedExpr,
    cst.Await,
)


def _parenthesized(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`expr`, in parentheses when moving it could change how it binds."""
    if isinstance(expr, _LOOSE) and not expr.lpar:
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expr


_BELOW_ADDITIVE = (cst.BitOr, cst.BitAnd, cst.BitXor, cst.LeftShift, cst.RightShift)


def _needs_parens_left_of_additive(expr: cst.BaseExpression) -> bool:
    if expr.lpar:
        return False
    if isinstance(expr, cst.BinaryOperation):
        return isinstance(expr.operator, _BELOW_ADDITIVE)
    if isinstance(expr, cst.UnaryOperation):
        return isinstance(expr.operator, cst.Not)
    return isinstance(expr, (cst.BooleanOperation, cst.Comparison, cst.IfExp, cst.Lambda, cst.NamedExpr))


def _int_value(expr: cst.BaseExpression) -> int | None:
    """The value of a plain integer literal, possibly negated; None for anything else."""
    if isinstance(expr, cst.Integer) and not expr.lpar:
        try:
            return int(expr.value, 0)
        except ValueError:
            return None
    if (
        isinstance(expr, cst.UnaryOperation)
        and isinstance(expr.operator, cst.Minus)
        and isinstance(expr.expression, cst.Integer)
        and not expr.lpar
    ):
        inner = _int_value(expr.expression)
        return None if inner is None else -inner
    return None


def _int_literal(value: int) -> cst.BaseExpression:
    if value < 0:
        return cst.UnaryOperation(operator=cst.Minus(), expression=cst.Integer(str(-value)))
    return cst.Integer(str(value))


def _shift(expr: cst.BaseExpression, delta: int) -> cst.BaseExpression:
    """`expr + delta`, written the way a person would (folding into a literal or a `+ k` tail)."""
    value = _int_value(expr)
    if value is not None:
        return _int_literal(value + delta)
    if (
        isinstance(expr, cst.BinaryOperation)
        and isinstance(expr.operator, (cst.Add, cst.Subtract))
        and isinstance(expr.right, cst.Integer)
        and not expr.lpar
    ):
        k = _int_value(expr.right)
        if k is not None:
            total = (k if isinstance(expr.operator, cst.Add) else -k) + delta
            if total == 0:
                return expr.left
            op = cst.Add if total > 0 else cst.Subtract
            return expr.with_changes(operator=_op_like(op, expr.operator), right=cst.Integer(str(abs(total))))
    left = expr
    if _needs_parens_left_of_additive(expr):
        left = expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    op = cst.Add() if delta > 0 else cst.Subtract()
    return cst.BinaryOperation(left=left, operator=op, right=cst.Integer(str(abs(delta))))


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _is_string(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString))


def _is_collection_literal(expr: cst.BaseExpression) -> bool:
    return _is_string(expr) or isinstance(expr, (cst.List, cst.Tuple, cst.ListComp))


def _single_small(stmt: cst.CSTNode) -> cst.BaseSmallStatement | None:
    """The one small statement of a simple statement line, if it has exactly one."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        return stmt.body[0]
    return None


def _block_statements(node: cst.CSTNode) -> Iterator[cst.BaseStatement]:
    """Statements of an indented block that can go without leaving the block empty."""
    if isinstance(node, cst.IndentedBlock) and len(node.body) >= 2:
        yield from node.body


# ---------------------------------------------------------------------------------------------- mutators


_FLIPPED_COMPARISON = {
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.LessThan: cst.GreaterThanEqual,
    cst.GreaterThanEqual: cst.LessThan,
    cst.GreaterThan: cst.LessThanEqual,
    cst.LessThanEqual: cst.GreaterThan,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
}


class FlipComparison(Mutator):
    name = "flip_comparison"
    summary = "negate one comparison operator (< to >=, == to !=, in to not in, ...)"

    def edits(self, node, parent, ctx):
        if not isinstance(node, cst.Comparison):
            return
        for i, target in enumerate(node.comparisons):
            flipped = _FLIPPED_COMPARISON.get(type(target.operator))
            if flipped is None:
                continue
            comparisons = list(node.comparisons)
            comparisons[i] = target.with_changes(operator=_op_like(flipped, target.operator))
            yield Edit(node, node.with_changes(comparisons=comparisons))


_NON_COMMUTATIVE = (
    cst.Subtract,
    cst.Divide,
    cst.FloorDivide,
    cst.Modulo,
    cst.Power,
    cst.LeftShift,
    cst.RightShift,
)
_ORDERING = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)


class SwapOperands(Mutator):
    name = "swap_operands"
    summary = "swap the operands of a non-commutative operator or an ordering comparison"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _NON_COMMUTATIVE):
            if _code(node.left) != _code(node.right):
                yield Edit(
                    node, node.with_changes(left=_parenthesized(node.right), right=_parenthesized(node.left))
                )
        elif (
            isinstance(node, cst.Comparison)
            and len(node.comparisons) == 1
            and isinstance(node.comparisons[0].operator, _ORDERING)
        ):
            target = node.comparisons[0]
            if _code(node.left) != _code(target.comparator):
                swapped = target.with_changes(comparator=_parenthesized(node.left))
                yield Edit(
                    node, node.with_changes(left=_parenthesized(target.comparator), comparisons=[swapped])
                )


class OffByOne(Mutator):
    name = "off_by_one"
    summary = "move a range() bound or a slice bound by one"

    def edits(self, node, parent, ctx):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value == "range"
            and 1 <= len(node.args) <= 3
            and all(a.keyword is None and not a.star for a in node.args)
        ):
            bounds = [(0, -1)] if len(node.args) == 1 else [(0, 1), (1, -1)]
            for index, delta in bounds:
                args = list(node.args)
                args[index] = args[index].with_changes(value=_shift(args[index].value, delta))
                yield Edit(node, node.with_changes(args=args))
        elif isinstance(node, cst.Slice):
            if node.lower is not None:
                yield Edit(node, node.with_changes(lower=_shift(node.lower, 1)))
            if node.upper is not None:
                yield Edit(node, node.with_changes(upper=_shift(node.upper, -1)))


class FlipBooleanOperator(Mutator):
    name = "flip_boolean_operator"
    summary = "turn `and` into `or` and the other way round"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.BooleanOperation):
            new = cst.Or if isinstance(node.operator, cst.And) else cst.And
            yield Edit(node, node.with_changes(operator=_op_like(new, node.operator)))


_CHANGED_OPERATOR = {
    cst.Add: cst.Subtract,
    cst.Subtract: cst.Add,
    cst.Multiply: cst.Divide,
    cst.Divide: cst.Multiply,
    cst.FloorDivide: cst.Multiply,
    cst.Modulo: cst.FloorDivide,
    cst.Power: cst.Multiply,
    cst.LeftShift: cst.RightShift,
    cst.RightShift: cst.LeftShift,
    cst.BitAnd: cst.BitOr,
    cst.BitOr: cst.BitAnd,
    cst.BitXor: cst.BitOr,
}
_CHANGED_AUG_OPERATOR = {
    cst.AddAssign: cst.SubtractAssign,
    cst.SubtractAssign: cst.AddAssign,
    cst.MultiplyAssign: cst.DivideAssign,
    cst.DivideAssign: cst.MultiplyAssign,
    cst.BitOrAssign: cst.BitAndAssign,
    cst.BitAndAssign: cst.BitOrAssign,
}


class ChangeOperator(Mutator):
    name = "change_operator"
    summary = "replace an arithmetic or bitwise operator by a related one (+ to -, * to /, | to &, ...)"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.BinaryOperation):
            new = _CHANGED_OPERATOR.get(type(node.operator))
            # String formatting (`"%s" % x`), concatenation and repetition give only type errors.
            if new is None or _is_collection_literal(node.left) or _is_collection_literal(node.right):
                return
            yield Edit(node, node.with_changes(operator=_op_like(new, node.operator)))
        elif isinstance(node, cst.AugAssign):
            new = _CHANGED_AUG_OPERATOR.get(type(node.operator))
            if new is not None and not _is_collection_literal(node.value):
                yield Edit(node, node.with_changes(operator=_op_like(new, node.operator)))


def _bumped(value: int) -> int:
    if value in (0, 1):
        return 1 - value
    return value + 1 if value > 0 else value - 1


class ChangeConstant(Mutator):
    name = "change_constant"
    summary = "change a numeric or boolean constant (0 and 1 swap, n to n+1, True to False)"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.Name) and node.value in ("True", "False"):
            yield Edit(node, node.with_changes(value="False" if node.value == "True" else "True"))
        elif isinstance(node, cst.UnaryOperation) and _int_value(node) is not None:
            yield Edit(
                node, _int_literal(_bumped(_int_value(node))).with_changes(lpar=node.lpar, rpar=node.rpar)
            )
        elif isinstance(node, cst.Integer):
            if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Minus):
                return  # handled with its sign above
            value = _int_value(node)
            if value is None:
                return
            new = _bumped(value)
            text = hex(new) if node.value.lower().startswith("0x") else str(new)
            yield Edit(node, node.with_changes(value=text))
        elif isinstance(node, cst.Float):
            try:
                value = float(node.value.replace("_", ""))
            except ValueError:
                return
            yield Edit(node, node.with_changes(value=repr(1.0 if value == 0 else value * 2)))


class DropReturnValue(Mutator):
    name = "drop_return_value"
    summary = "return None instead of the computed value"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.Return) and node.value is not None:
            if isinstance(node.value, cst.Name) and node.value.value == "None":
                return
            yield Edit(node, cst.Return(value=None, semicolon=node.semicolon))


class SwapCallArguments(Mutator):
    name = "swap_call_arguments"
    summary = "swap two neighbouring positional arguments of a call"

    def edits(self, node, parent, ctx):
        if not isinstance(node, cst.Call):
            return
        args = node.args
        for i in range(len(args) - 1):
            a, b = args[i], args[i + 1]
            if a.keyword or b.keyword or a.star or b.star or _code(a.value) == _code(b.value):
                continue
            swapped = list(args)
            swapped[i] = a.with_changes(value=b.value)
            swapped[i + 1] = b.with_changes(value=a.value)
            yield Edit(node, node.with_changes(args=swapped))


class BreakMethodChain(Mutator):
    name = "break_method_chain"
    summary = "drop one call from a method chain (a.f().g() to a.g())"

    def edits(self, node, parent, ctx):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and isinstance(node.func.value, cst.Call)
            and isinstance(node.func.value.func, cst.Attribute)
            and not node.func.value.lpar
        ):
            base = node.func.value.func.value
            yield Edit(node, node.with_changes(func=node.func.with_changes(value=base)))


class InvertIfElse(Mutator):
    name = "invert_if_else"
    summary = "swap the bodies of an if/else"

    def edits(self, node, parent, ctx):
        if isinstance(node, cst.If) and isinstance(node.orelse, cst.Else):
            if _code(node.body) == _code(node.orelse.body):
                return
            inverted = node.with_changes(
                body=node.orelse.body, orelse=node.orelse.with_changes(body=node.body)
            )
            yield Edit(node, inverted)


class RemoveConditional(Mutator):
    name = "remove_conditional"
    summary = "remove a whole if statement"

    def edits(self, node, parent, ctx):
        for stmt in _block_statements(node):
            if isinstance(stmt, cst.If):
                yield Edit(stmt, None)


class RemoveLoop(Mutator):
    name = "remove_loop"
    summary = "remove a whole for or while loop"

    def edits(self, node, parent, ctx):
        for stmt in _block_statements(node):
            if isinstance(stmt, (cst.For, cst.While)):
                yield Edit(stmt, None)


def _assigned_names(target: cst.BaseExpression) -> list[cst.Name] | None:
    """Plain names an assignment target binds; None when it also stores into attributes or items."""
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        names: list[cst.Name] = []
        for element in target.elements:
            inner = _assigned_names(element.value)
            if inner is None:
                return None
            names.extend(inner)
        return names
    return None


class RemoveAssignment(Mutator):
    name = "remove_assignment"
    summary = "remove an assignment that updates state (an attribute, an item, or a name bound earlier)"

    def edits(self, node, parent, ctx):
        for stmt in _block_statements(node):
            small = _single_small(stmt)
            if isinstance(small, cst.AugAssign):
                yield Edit(stmt, None)
            elif isinstance(small, (cst.Assign, cst.AnnAssign)):
                if isinstance(small, cst.AnnAssign) and small.value is None:
                    continue
                targets = (
                    [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                )
                line = ctx.line_of[id(stmt)]
                # Dropping the first binding of a local only trades a logic bug for an UnboundLocalError.
                if all(self._keeps_meaning(t, line, ctx) for t in targets):
                    yield Edit(stmt, None)

    @staticmethod
    def _keeps_meaning(target: cst.BaseExpression, line: int, ctx: FunctionContext) -> bool:
        names = _assigned_names(target)
        if names is None:
            return True
        return all(ctx.bound_before(n.value, line) for n in names)


class RemoveCall(Mutator):
    name = "remove_call"
    summary = "remove a statement that only calls something (a side effect)"

    def edits(self, node, parent, ctx):
        for stmt in _block_statements(node):
            small = _single_small(stmt)
            if isinstance(small, cst.Expr):
                value = small.value.expression if isinstance(small.value, cst.Await) else small.value
                if isinstance(value, cst.Call):
                    yield Edit(stmt, None)


MUTATORS: Registry[Mutator] = Registry(
    "mutator",
    {
        cls.name: cls
        for cls in (
            FlipComparison,
            SwapOperands,
            OffByOne,
            FlipBooleanOperator,
            ChangeOperator,
            ChangeConstant,
            DropReturnValue,
            SwapCallArguments,
            BreakMethodChain,
            InvertIfElse,
            RemoveConditional,
            RemoveLoop,
            RemoveAssignment,
            RemoveCall,
        )
    },
    base=Mutator,
)


def get_mutator(spec: str) -> Mutator:
    """A mutator by short name or dotted path (`package.module.ClassName`)."""
    return MUTATORS.get(spec)()


def get_mutators(specs: Iterable[str] | None = None) -> list[Mutator]:
    """The mutators named by `specs`, or all built-in ones."""
    if specs is None:
        return [cls() for _, cls in MUTATORS.items()]
    mutators = [get_mutator(s) for s in specs]
    if not mutators:
        raise ConfigError("no mutators selected")
    return mutators
