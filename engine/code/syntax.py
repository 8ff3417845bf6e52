"""Reading a design's syntax tree with libcst (nothing is executed): dotted names, import aliases, the design
classes and their members, and the contract's problems. Shared by the validator, the operators, the meta agent's
patches and the static audit."""

from __future__ import annotations

import functools

import libcst as cst
import libcst.matchers as m

from harness.design import CONTRACT


def dotted(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else ``None``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr.value}" if head else None
    return None


@functools.lru_cache(maxsize=16)  # modules are immutable and hashed by identity; one walk serves both below
def _scan(module: cst.Module) -> tuple[dict[str, str], tuple[cst.ClassDef, ...]]:
    aliases: dict[str, str] = {}
    classes: list[cst.ClassDef] = []

    class _Collect(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            for alias in node.names:
                full = dotted(alias.name) or ""
                local = dotted(alias.asname.name) if alias.asname else None
                aliases[local or full.split(".")[0]] = full if local else full.split(".")[0]

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            if node.module is None or node.relative or isinstance(node.names, cst.ImportStar):
                return
            for alias in node.names:
                name = dotted(alias.name) or ""
                local = (dotted(alias.asname.name) if alias.asname else None) or name
                aliases[local] = f"{dotted(node.module)}.{name}"

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            classes.append(node)

    module.visit(_Collect())
    return aliases, tuple(classes)


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name -> dotted origin for every import in the module (``np`` -> ``numpy``)."""
    return dict(_scan(module)[0])


def resolve(node: cst.CSTNode, aliases: dict[str, str]) -> str | None:
    """The dotted origin of a Name/Attribute chain through the module's imports (``np.load`` -> ``numpy.load``)."""
    name = dotted(node)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    base = aliases.get(head, head)
    return f"{base}.{rest}" if rest else base


def design_classes(module: cst.Module) -> list[cst.ClassDef]:
    """Every class deriving, directly or through another class of the module, from the contract's base class
    (``harness.design.MemoryDesign``, however imported), in source order."""
    aliases, classes = _scan(module)
    base = f"{CONTRACT['base_module']}.{CONTRACT['base_class']}"
    names: set[str] = set()
    while True:
        design = [c for c in classes if any(resolve(a.value, aliases) in names | {base} for a in c.bases)]
        if {c.name.value for c in design} <= names:
            return design
        names |= {c.name.value for c in design}


_SUPER_INIT = m.Call(func=m.Attribute(value=m.Call(func=m.Name("super")), attr=m.Name("__init__")))


def class_members(cls: cst.ClassDef) -> dict[str, cst.CSTNode]:
    """Name -> defining statement for the methods and class attributes in a class body (last def wins)."""
    members: dict[str, cst.CSTNode] = {}
    for stmt in cls.body.body:
        if isinstance(stmt, cst.FunctionDef):
            members[stmt.name.value] = stmt
        else:
            for target in m.findall(stmt, m.AssignTarget(target=m.Name()) | m.AnnAssign(target=m.Name())):
                members.setdefault(target.target.value, stmt)
    return members


def contract_problems(module: cst.Module) -> list[tuple[cst.CSTNode | None, str, str, str]]:
    """``(node, rule, message, severity)`` for every way the module breaks :data:`harness.design.CONTRACT`:
    not exactly one design class (at top level), a contract method missing, not async, or with other
    parameters, a constructor with other parameters (or, as a warning, not calling ``super().__init__``)."""
    out: list[tuple[cst.CSTNode | None, str, str, str]] = []
    base, home = CONTRACT["base_class"], CONTRACT["base_module"]
    classes = design_classes(module)
    if not classes:
        out.append((None, "missing-design-class", f"no class derives from {base}: define exactly one "
                    f"`class YourMemory({base})` and import it with `from {home} import {base}`", "error"))
    for extra in classes[1:]:
        out.append((extra, "multiple-design-classes", f"{len(classes)} classes derive from {base} ("
                    + ", ".join(c.name.value for c in classes) + "); keep exactly one (helpers must not subclass it)",
                    "error"))
    if len(classes) != 1:
        return out
    cls = classes[0]
    name, members = cls.name.value, class_members(cls)
    if not any(cls is stmt for stmt in module.body):
        out.append((cls, "missing-design-class", f"{name} must be defined at the top level of the module", "error"))
    for method, spec in CONTRACT["methods"].items():
        node, kind = members.get(method), "async def" if spec["async"] else "def"
        signature = f"`{kind} {method}({', '.join(spec['params'])}) -> {spec['returns']}`"
        if not isinstance(node, cst.FunctionDef):
            out.append((node or cls, "missing-method", f"{name} must define {signature} in its class body", "error"))
            continue
        if spec["async"] and node.asynchronous is None:
            out.append((node, "method-not-async", f"{name}.{method} must be {signature} (the harness awaits it)",
                        "error"))
        elif not spec["async"] and node.asynchronous is not None:
            out.append((node, "wrong-signature", f"{name}.{method} must be a plain {signature}", "error"))
        problem = _signature_problem(node, spec["params"])
        if problem:
            out.append((node, "wrong-signature", f"{name}.{method} {problem}; the contract is {signature}", "error"))
    ctor = CONTRACT["constructor"]
    init = members.get(ctor["name"])
    if isinstance(init, cst.FunctionDef):
        problem = _signature_problem(init, ctor["params"])
        if problem:
            out.append((init, "wrong-signature", f"{name}.{ctor['name']} {problem}; the contract is "
                        f"`def {ctor['name']}({', '.join(ctor['params'])})`", "error"))
        if not m.findall(init, _SUPER_INIT):
            out.append((init, "missing-super-init", f"{name}.{ctor['name']} should call super().{ctor['name']}("
                        f"{', '.join(ctor['params'][1:])}) first", "warning"))
    return out


def _signature_problem(fn: cst.FunctionDef, expected: list[str]) -> str | None:
    if fn.decorators:
        return "must not be decorated"
    params = fn.params
    positional = [*params.posonly_params, *params.params]
    if [p.name.value for p in positional[: len(expected)]] != expected:
        return f"takes ({cst.Module([]).code_for_node(params)}); its parameters must be ({', '.join(expected)})"
    if any(p.default is None for p in [*positional[len(expected):], *params.kwonly_params]):
        return "has extra parameters without default values"
    return None

