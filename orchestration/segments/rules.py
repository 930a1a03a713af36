"""The rule language: a Python-syntax boolean expression over feature/score columns.

Rules are parsed with `ast` and only a whitelist of node types is accepted (comparisons,
and/or/not, `in [...]`, arithmetic, literals, column names, `is None`). Every rule is
type-checked against the column types and compiled to one sqlglot expression tree in which
columns are quoted identifiers from the known column set and every literal is a named
parameter: user text never reaches SQL. The tree renders to each engine's dialect (DuckDB
`$p_0`, Spark `:p_0`), so a rule means the same on both. Rules follow SQL null logic: a rule that evaluates to null
(for example a user without a score) is false.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from orchestration.segments.schema import kind_of

NULL_NAMES = {"null", "None"}
BOOL_NAMES = {"true": True, "false": False, "True": True, "False": False}
_ORDERABLE = {"number", "string", "date", "timestamp"}
_CMP_SQL = {ast.Eq: exp.EQ, ast.NotEq: exp.NEQ, ast.Lt: exp.LT, ast.LtE: exp.LTE, ast.Gt: exp.GT}
_CMP_SQL[ast.GtE] = exp.GTE
_ARITH_SQL = {
    ast.Add: exp.Add,
    ast.Sub: exp.Sub,
    ast.Mult: exp.Mul,
    ast.Div: exp.Div,
    ast.Mod: exp.Mod,
}
_ARITH_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
# Engine (Settings.engine) -> sqlglot dialect of the SQL a rule renders to.
DIALECTS = {"duckdb": "duckdb", "spark": "spark"}
_CMP_TEXT = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}


class RuleError(ValueError):
    """A rule is not valid; `position` is the 1-based character in the rule, when known."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class CompiledRule:
    """A checked rule: the DuckDB predicate (never null), its parameters and its columns.

    `expression` is the engine-neutral tree; `sql_for("spark")` renders it for another engine."""

    text: str
    sql: str
    params: dict[str, object] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    expression: exp.Expression | None = field(default=None, compare=False, repr=False)

    @property
    def unknown_sql(self) -> str:
        """DuckDB predicate: the rule is null for this row (a column it needs is null), so
        "not a member" means "could not be decided" (coverage.py)."""
        if self.expression is None:
            raise ValueError("rule was built without an expression tree")
        return exp.Is(this=self.expression.this.copy(), expression=exp.Null()).sql(
            DIALECTS["duckdb"]
        )

    def sql_for(self, engine: str) -> str:
        """The predicate in `engine`'s dialect (duckdb, spark), with the same parameters."""
        if engine not in DIALECTS:
            raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(DIALECTS)}")
        if self.expression is None:
            raise ValueError("rule was built without an expression tree")
        return self.expression.sql(DIALECTS[engine])


def compile_rule(text: str, columns: Mapping[str, str], param_prefix: str = "p") -> CompiledRule:
    """Parse, type-check and compile `text`; raises RuleError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("rule is empty; expected an expression such as `days_since_signup < 7`")
    # Newlines become spaces (same length), so positions still point into the original text.
    flat = text.replace("\r", " ").replace("\n", " ").strip()
    try:
        tree = ast.parse(flat, mode="eval")
    except SyntaxError as exc:
        pos, msg = exc.offset or 0, exc.msg
        if pos < 1:
            pos, msg = len(flat) + 1, "unexpected end of rule"
        near = flat[pos - 1 : pos + 1]
        if near.startswith("=") and not near.startswith("=="):
            msg += " (use == to compare)"
        elif near == "<>":
            msg += " (use != for not equal)"
        raise RuleError(
            f"syntax error at character {pos}: {msg}\n  {flat}\n  {' ' * (pos - 1)}^", pos
        ) from None
    compiler = _Compiler(flat, columns, param_prefix)
    tree_sql, kind = compiler.visit(tree.body)
    if kind != "bool":
        raise RuleError(f"rule must be true/false, but `{flat}` is a {kind}")
    expression = exp.func("coalesce", exp.paren(tree_sql, copy=False), exp.false())
    return CompiledRule(
        text=flat,
        sql=expression.sql(DIALECTS["duckdb"]),
        params=compiler.params,
        columns=tuple(sorted(compiler.used)),
        expression=expression,
    )


class _Compiler:
    def __init__(self, text: str, columns: Mapping[str, str], prefix: str):
        self.text = text
        self.columns = columns
        self.prefix = prefix
        self.params: dict[str, object] = {}
        self.used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> RuleError:
        pos = getattr(node, "col_offset", None)
        where = f" at character {pos + 1}" if pos is not None else ""
        return RuleError(f"{message}{where}", None if pos is None else pos + 1)

    def snippet(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.dump(node)

    def param(self, value: object) -> exp.Expression:
        name = f"{self.prefix}_{len(self.params)}"
        self.params[name] = value
        return exp.Placeholder(this=name)

    def visit(self, node: ast.AST) -> tuple[exp.Expression, str]:
        handler = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            raise self.fail(
                node,
                f"`{self.snippet(node)}` is not allowed in a rule "
                f"({type(node).__name__}); use comparisons, and/or/not, in [...], "
                "arithmetic, literals and column names",
            )
        return handler(node)

    def visit_Name(self, node: ast.Name) -> tuple[exp.Expression, str]:
        if node.id in BOOL_NAMES:
            return exp.Boolean(this=BOOL_NAMES[node.id]), "bool"
        if node.id in NULL_NAMES:
            raise self.fail(
                node, f"`{node.id}` can only be used as `column is None` / `is not None`"
            )
        if node.id not in self.columns:
            close = difflib.get_close_matches(node.id, list(self.columns), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.fail(node, f"unknown column `{node.id}`{hint}")
        self.used.add(node.id)
        return exp.column(node.id, quoted=True), kind_of(self.columns[node.id])

    def visit_Constant(self, node: ast.Constant) -> tuple[exp.Expression, str]:
        value = node.value
        if isinstance(value, bool):
            return exp.Boolean(this=value), "bool"
        if isinstance(value, int | float):
            return self.param(value), "number"
        if isinstance(value, str):
            return self.param(value), "string"
        if value is None:
            raise self.fail(node, "`None` can only be used as `column is None` / `is not None`")
        raise self.fail(node, f"literal `{self.snippet(node)}` is not allowed")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> tuple[exp.Expression, str]:
        sql, kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self.expect(node.operand, kind, "bool", "`not`")
            return exp.paren(exp.Not(this=sql), copy=False), "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            self.expect(node.operand, kind, "number", "a sign")
            signed = exp.Neg(this=sql) if isinstance(node.op, ast.USub) else sql
            return exp.paren(signed, copy=False), "number"
        raise self.fail(node, f"operator in `{self.snippet(node)}` is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> tuple[exp.Expression, str]:
        word = "AND" if isinstance(node.op, ast.And) else "OR"
        parts = []
        for value in node.values:
            sql, kind = self.visit(value)
            self.expect(value, kind, "bool", f"`{word.lower()}`")
            parts.append(sql)
        joined = exp.and_(*parts, copy=False) if word == "AND" else exp.or_(*parts, copy=False)
        return exp.paren(joined, copy=False), "bool"

    def visit_BinOp(self, node: ast.BinOp) -> tuple[exp.Expression, str]:
        op_class = _ARITH_SQL.get(type(node.op))
        op = _ARITH_TEXT.get(type(node.op))
        if op_class is None:
            raise self.fail(
                node, f"operator in `{self.snippet(node)}` is not allowed; use + - * / %"
            )
        left, lkind = self.visit(node.left)
        right, rkind = self.visit(node.right)
        self.expect(node.left, lkind, "number", f"`{op}`")
        self.expect(node.right, rkind, "number", f"`{op}`")
        return exp.paren(op_class(this=left, expression=right), copy=False), "number"

    def visit_Compare(self, node: ast.Compare) -> tuple[exp.Expression, str]:
        if len(node.ops) > 1 and any(
            isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot) for op in node.ops
        ):
            raise self.fail(node, "`in` / `is` cannot be chained with other comparisons")
        left_node = node.left
        left, lkind = self.visit(left_node)
        parts = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                if not _is_null_literal(right_node):
                    raise self.fail(node, "`is` / `is not` only compare with None (null)")
                is_null = exp.Is(this=left, expression=exp.Null())
                parts.append(
                    exp.paren(exp.Not(this=is_null) if isinstance(op, ast.IsNot) else is_null)
                )
            elif isinstance(op, ast.In | ast.NotIn):
                parts.append(self.membership(node, left_node, left, lkind, op, right_node))
            else:
                if _is_null_literal(right_node) or _is_null_literal(left_node):
                    raise self.fail(node, "compare with None using `is None` / `is not None`")
                right, rkind = self.visit(right_node)
                text = _CMP_TEXT[type(op)]
                self.check_comparable(node, left_node, lkind, right_node, rkind, text)
                if not isinstance(op, ast.Eq | ast.NotEq) and lkind not in _ORDERABLE:
                    raise self.fail(
                        node, f"`{text}` does not apply to {lkind} values in `{self.snippet(node)}`"
                    )
                compared = _CMP_SQL[type(op)](this=left.copy(), expression=right.copy())
                parts.append(exp.paren(compared, copy=False))
                left_node, left, lkind = right_node, right, rkind
        return exp.paren(exp.and_(*parts, copy=False), copy=False), "bool"

    def membership(
        self,
        node: ast.Compare,
        left_node: ast.AST,
        left: exp.Expression,
        lkind: str,
        op: ast.cmpop,
        right_node: ast.AST,
    ) -> exp.Expression:
        if not isinstance(right_node, ast.List | ast.Tuple | ast.Set) or not right_node.elts:
            raise self.fail(
                right_node,
                "`in` needs a non-empty list of literals, "
                "e.g. `company_size in ['201-1000', '1000+']`",
            )
        items = []
        for element in right_node.elts:
            if not isinstance(element, ast.Constant) or element.value is None:
                raise self.fail(element, "`in` lists may only hold literals")
            sql, kind = self.visit(element)
            self.check_comparable(node, left_node, lkind, element, kind, "in")
            items.append(sql)
        found = exp.In(this=left, expressions=items)
        return exp.paren(exp.Not(this=found) if isinstance(op, ast.NotIn) else found, copy=False)

    def check_comparable(
        self,
        node: ast.AST,
        left_node: ast.AST,
        lkind: str,
        right_node: ast.AST,
        rkind: str,
        op: str,
    ) -> None:
        if lkind != rkind or lkind == "other":
            raise self.fail(
                node,
                f"type mismatch: `{self.snippet(left_node)}` is a {lkind} but "
                f"`{self.snippet(right_node)}` is a {rkind} (in `{op}`)",
            )

    def expect(self, node: ast.AST, kind: str, wanted: str, context: str) -> None:
        if kind != wanted:
            raise self.fail(
                node,
                f"type mismatch: {context} needs a {wanted} but `{self.snippet(node)}` is a {kind}",
            )


def _is_null_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in NULL_NAMES
    )
