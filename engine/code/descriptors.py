"""Code-structure descriptors of a design (libcst), one half of the novelty descriptor space."""

from __future__ import annotations

import math

import libcst as cst

#: the features, in vector order
FEATURES = ("lines", "functions", "loops", "branches", "comprehensions", "awaits", "llm_calls", "embed_calls",
            "sql_statements", "string_literals", "numeric_literals", "imports")


class _Counter(cst.CSTVisitor):
    def __init__(self) -> None:
        self.counts = dict.fromkeys(FEATURES, 0)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.counts["functions"] += 1

    def visit_For(self, node: cst.For) -> None:
        self.counts["loops"] += 1

    def visit_While(self, node: cst.While) -> None:
        self.counts["loops"] += 1

    def visit_If(self, node: cst.If) -> None:
        self.counts["branches"] += 1

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self.counts["comprehensions"] += 1

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self.counts["comprehensions"] += 1

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self.counts["comprehensions"] += 1

    def visit_Await(self, node: cst.Await) -> None:
        self.counts["awaits"] += 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        name = node.attr.value
        if name == "complete":
            self.counts["llm_calls"] += 1
        elif name == "embed":
            self.counts["embed_calls"] += 1
        elif name in ("execute", "executemany", "executescript"):
            self.counts["sql_statements"] += 1

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        self.counts["string_literals"] += 1

    def visit_Integer(self, node: cst.Integer) -> None:
        self.counts["numeric_literals"] += 1

    def visit_Float(self, node: cst.Float) -> None:
        self.counts["numeric_literals"] += 1

    def visit_Import(self, node: cst.Import) -> None:
        self.counts["imports"] += 1

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.counts["imports"] += 1


def code_vector(source: str) -> list[float]:
    """log(1 + count) of each feature in FEATURES (all zeros for source that does not parse)."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        return [0.0] * len(FEATURES)
    counter = _Counter()
    module.visit(counter)
    counter.counts["lines"] = len(source.splitlines())
    return [math.log1p(counter.counts[f]) for f in FEATURES]
