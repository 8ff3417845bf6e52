"""The reading half of :mod:`engine.alma.importer`: what an official ALMA design imports, which classes and
methods it defines (and which are async), how it uses the recorder, and where its sync/async use breaks.

:class:`Facts` collects everything in one libcst pass; :func:`async_problems` and :func:`method_async` judge
the calls it saw. Every problem carries the line in the original file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import PositionProvider

from engine.code.syntax import dotted
from engine.code.validate import load_policy

ALMA_MODULES = {"agents.memo_structure": {"MemoStructure", "Sub_memo_layer"},
                "eval_envs.base_envs": {"Basic_Recorder"}, "utils.hire_agent": {"Agent", "Embedding"}}
RECORDER_ATTRS = {"init", "steps", "reward", "memory_retrieved", "log_init", "log_step", "set_reward"}
INIT_KEYS = {"goal", "obs", "task_id", "benchmark"}
SHIM_ASYNC = {"ask", "get_embedding", "get_batch_embeddings", "compute_similarity",
              "compute_one_to_group_similarity", "log_init", "log_step", "set_reward"}
BASE_ASYNC = {"retrieve": True, "update": True, "general_retrieve": True, "general_update": True}
LOOP_CALLS = {"asyncio.run", "run_until_complete", "run_forever", "asyncio.new_event_loop",
              "asyncio.get_event_loop"}
EXTERNAL = {
    "langchain_chroma": "the Chroma vector database", "chromadb": "the Chroma vector database",
    "langchain": "LangChain", "langchain_core": "LangChain", "langchain_openai": "LangChain's OpenAI client",
    "faiss": "the FAISS vector index", "networkx": "networkx (graph library)", "openai": "a network LLM client",
    "anthropic": "a network LLM client", "requests": "an HTTP client", "httpx": "an HTTP client",
    "aiohttp": "an HTTP client", "tiktoken": "tiktoken", "sentence_transformers": "a local embedding model",
    "torch": "torch", "pandas": "pandas",
}
HINTS = {"the Chroma vector database": "keep vectors in SQLite at self.toolkit.db_path (or numpy arrays) and rank "
                                       "by cosine similarity of Embedding vectors",
         "the FAISS vector index": "rank numpy arrays by cosine similarity of Embedding vectors",
         "networkx (graph library)": "keep nodes and edges in dicts or SQLite tables"}


@dataclass
class Problem:
    line: int
    kind: str
    message: str
    severity: str = "error"  # "error": cannot convert (or will not run as written); "warning": converted, caveat

    def text(self) -> str:
        where = f"line {self.line}" if self.line else "module"
        return f"{where}: [{self.kind}]{' (warning)' if self.severity == 'warning' else ''} {self.message}"


@dataclass
class _Fn:
    name: str
    cls: str | None
    is_async: bool
    recorders: set[str] = field(default_factory=set)
    inits: set[str] = field(default_factory=set)


class Facts(cst.CSTVisitor):
    """One pass over the original module collecting what the conversion depends on."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self):
        super().__init__()
        self.alma_names: dict[str, str] = {}  # local name -> ALMA name
        self.problems: list[Problem] = []
        self.classes: dict[str, dict] = {}
        self.attr_types: dict[tuple[str, str], str] = {}  # (class, self attr) -> class it was built from
        self.calls: list[tuple[int, str, str, str | None, bool, bool, _Fn | None]] = []
        self.fns: list[_Fn] = []
        self.cls_stack: list[str] = []
        self._awaited: set[int] = set()
        self._args: set[int] = set()

    def line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def add(self, node: cst.CSTNode | None, kind: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.line(node) if node is not None else 0, kind, message, severity))

    # -- imports
    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted(alias.name) or ""
            if module in ALMA_MODULES:
                names = ", ".join(sorted(ALMA_MODULES[module]))
                self.add(node, "alma-import", f"'import {module}' cannot be converted: write 'from {module} "
                         f"import {names}' and use the names directly")
            else:
                self._module(node, module)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = dotted(node.module) if node.module is not None else ""
        if node.relative:
            self.add(node, "relative-import", "relative imports need the original package; a converted design is "
                     "one module: inline what it imports")
            return
        if module in ALMA_MODULES:
            if isinstance(node.names, cst.ImportStar):
                self.add(node, "star-import", f"'from {module} import *': import the names explicitly")
                return
            for alias in node.names:
                name = dotted(alias.name) or ""
                if name not in ALMA_MODULES[module]:
                    self.add(alias, "unknown-alma-api", f"{module}.{name} has no alma-engine counterpart (known: "
                             f"{', '.join(sorted(ALMA_MODULES[module]))}); remove its use")
                local = dotted(alias.asname.name) if alias.asname else name
                self.alma_names[local or name] = name
            return
        self._module(node, module)

    def _module(self, node: cst.CSTNode, module: str) -> None:
        policy = load_policy()
        top = module.split(".")[0]
        allowed = any(module == r or module.startswith(r + ".") for r in policy.imports_allowed)
        if module in ALMA_MODULES or allowed:
            return
        what = EXTERNAL.get(top)
        if what:
            hint = HINTS.get(what, "designs reach models only through Agent / Embedding (the toolkit)")
            self.add(node, "external-library", f"imports {module}: {what} is not available to designs (not on "
                     f"the import allowlist; no network, no services in the sandbox): {hint}")
        elif any(module == r or module.startswith(r + ".") for r in policy.imports_forbidden):
            self.add(node, "forbidden-import", f"imports {module}: forbidden by the safety policy (processes, "
                     "network, native code, interpreter internals)")
        else:
            self.add(node, "external-library", f"imports {module}: not on the design import allowlist ("
                     f"{', '.join(policy.imports_allowed)})")

    # -- classes and functions
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = [dotted(a.value) or "" for a in node.bases]
        methods = {}
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef):
                params = [p for p in stmt.params.params]
                methods[stmt.name.value] = {"async": stmt.asynchronous is not None, "line": self.line(stmt),
                                            "required": [p.name.value for p in params[1:] if p.default is None]}
        self.classes[node.name.value] = {"bases": bases, "methods": methods, "line": self.line(node)}
        self.cls_stack.append(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.cls_stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        fn = _Fn(node.name.value, self.cls_stack[-1] if self.cls_stack else None, node.asynchronous is not None)
        for p in node.params.params:
            ann = dotted(p.annotation.annotation) if p.annotation else ""
            if p.name.value == "recorder" or (ann and self.alma_names.get(ann.split(".")[-1]) == "Basic_Recorder"):
                fn.recorders.add(p.name.value)
        if self.fns:  # nested functions see the recorders of the enclosing one
            fn.recorders |= self.fns[-1].recorders
            fn.inits |= self.fns[-1].inits
        self.fns.append(fn)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.fns.pop()

    # -- recorder use
    def _is_recorder(self, node: cst.CSTNode) -> bool:
        return bool(self.fns) and isinstance(node, cst.Name) and node.value in self.fns[-1].recorders

    def _is_init(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Attribute) and node.attr.value == "init" and self._is_recorder(node.value):
            return True
        return bool(self.fns) and isinstance(node, cst.Name) and node.value in self.fns[-1].inits

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        if isinstance(value, cst.BooleanOperation):
            value = value.left
        if isinstance(value, cst.Call) and dotted(value.func) == "dict" and value.args:
            value = value.args[0].value
        if self._is_init(value):
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    self.fns[-1].inits.add(t.target.value)
        if isinstance(node.value, cst.Call) and self.cls_stack and self.fns and self.fns[-1].name == "__init__":
            built = dotted(node.value.func) or ""
            for t in node.targets:
                if isinstance(t.target, cst.Attribute) and dotted(t.target.value) == "self":
                    self.attr_types[(self.cls_stack[-1], t.target.attr.value)] = built

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self._is_recorder(node.value) and node.attr.value not in RECORDER_ATTRS:
            self.add(node, "recorder-api", f"recorder.{node.attr.value} is not provided: the converted recorder has "
                     "init (goal, obs, task_id, benchmark), steps (action, obs, reward, done per step), reward "
                     "and memory_retrieved; derive what you need from those")
        fn = self.fns[-1] if self.fns else None
        if fn and fn.name == "general_retrieve" and self._is_recorder(node.value) \
                and node.attr.value in ("steps", "reward"):
            self.add(node, "recorder-api", f"general_retrieve reads recorder.{node.attr.value}, which is empty "
                     "before the episode (as in the official runner)", "warning")

    def visit_Subscript(self, node: cst.Subscript) -> None:
        key = node.slice[0].slice if len(node.slice) == 1 else None
        if self._is_init(node.value) and isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString):
            name = key.value.evaluated_value
            if name not in INIT_KEYS:
                self.add(node, "recorder-init", f"recorder.init[{name!r}] is not filled by alma-engine (it has "
                         f"{', '.join(sorted(INIT_KEYS))}): KeyError at run time; use .get() or another key")

    # -- calls and awaits
    def visit_Await(self, node: cst.Await) -> None:
        self._awaited.add(id(node.expression))

    def visit_Arg(self, node: cst.Arg) -> None:
        self._args.add(id(node.value))

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func) or ""
        attr = node.func.attr.value if isinstance(node.func, cst.Attribute) else name
        receiver = dotted(node.func.value) if isinstance(node.func, cst.Attribute) else None
        fn = self.fns[-1] if self.fns else None
        if name in LOOP_CALLS or attr in LOOP_CALLS:
            self.add(node, "nested-event-loop", f"{name or attr}() starts an event loop inside the design, but "
                     "alma-engine already runs retrieve/update in one: await the coroutine instead")
        if attr == "get" and self._is_init(node.func.value if isinstance(node.func, cst.Attribute) else node) \
                and node.args and isinstance(node.args[0].value, cst.SimpleString):
            key = node.args[0].value.evaluated_value
            if key not in INIT_KEYS:
                self.add(node, "recorder-init", f"recorder.init.get({key!r}) is always missing in alma-engine (init "
                         f"has {', '.join(sorted(INIT_KEYS))})", "warning")
        self.calls.append((self.line(node), name, attr, receiver, id(node) in self._awaited, id(node) in self._args,
                           fn))


def method_async(facts: Facts, cls: str | None, method: str, seen: set[str] | None = None) -> bool | None:
    """Whether ``cls.method`` (looked up through the module's classes, then the ALMA bases) is async."""
    seen = seen or set()
    info = facts.classes.get(cls or "")
    if info is None or cls in seen:
        return BASE_ASYNC.get(method) if cls in ("MemoStructure", "Sub_memo_layer") else None
    if method in info["methods"]:
        return info["methods"][method]["async"]
    for base in info["bases"]:
        found = method_async(facts, facts.alma_names.get(base, base), method, seen | {cls})
        if found is not None:
            return found
    return None


def async_problems(facts: Facts) -> list[Problem]:
    out = []
    for line, name, attr, receiver, awaited, as_arg, fn in facts.calls:
        is_async = None
        if receiver == "self" and fn and fn.cls:
            is_async = method_async(facts, fn.cls, attr)
        elif receiver and receiver.startswith("self.") and receiver.count(".") == 1 and fn and fn.cls:
            built = facts.attr_types.get((fn.cls, receiver[5:]))
            is_async = method_async(facts, built, attr) if built else None
        elif attr in SHIM_ASYNC and receiver:
            is_async = True
        if is_async and not awaited and not as_arg:
            where = f" inside the plain def {fn.name} (make it async def)" if fn and not fn.is_async else ""
            out.append(Problem(line, "sync-async", f"{name}() is async but is called without await{where}: it "
                               "returns a coroutine, not a value, and its work never runs"))
        elif is_async is False and awaited:
            out.append(Problem(line, "sync-async", f"await on {name}(), a plain def: TypeError at run time; drop "
                               "the await or make it async def"))
    return out
