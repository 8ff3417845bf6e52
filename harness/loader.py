"""Load a memory design from source text into its own module namespace and check it against CONTRACT."""

from __future__ import annotations

import hashlib
import inspect
import sys
import traceback
import types
from pathlib import Path

from harness.design import CONTRACT, MemoryDesign
from harness.errors import ContractError, DesignLoadError


def source_hash(source: str) -> str:
    """Content hash identifying a design's source (first 16 hex digits of sha256)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def load_design_source(source: str, name: str = "<design>") -> type[MemoryDesign]:
    """Execute ``source`` as a fresh module and return its single MemoryDesign subclass.

    Raises:
        DesignLoadError: the source does not compile or raises at import time (the message has the traceback).
        ContractError: no (or more than one) MemoryDesign subclass, or a method/constructor with the wrong shape.
    """
    module_name = f"alma_design_{source_hash(source)}"
    module = types.ModuleType(module_name)
    module.__file__ = name
    try:
        code = compile(source, name, "exec")
    except SyntaxError as exc:
        raise DesignLoadError(name, f"syntax error at line {exc.lineno}: {exc.msg}") from exc
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the design is the harness's job; the sandbox isolates it
    except Exception as exc:
        sys.modules.pop(module_name, None)
        tb = "".join(traceback.format_exception(exc)[-4:])
        raise DesignLoadError(name, f"raised while its module was executed:\n{tb}") from exc
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, MemoryDesign) and obj is not MemoryDesign
        and obj.__module__ == module_name
    ]
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        raise ContractError(
            name,
            f"expected exactly one subclass of {CONTRACT['base_class']} (from {CONTRACT['base_module']}), "
            f"found {len(classes)}: {found}",
        )
    cls = classes[0]
    check_contract(cls, name)
    return cls


def load_design_file(path: str | Path) -> type[MemoryDesign]:
    """Read a design file and load it (see :func:`load_design_source`)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DesignLoadError(str(path), f"cannot read the file: {exc.strerror}") from exc
    return load_design_source(source, str(path))


def check_contract(cls: type, name: str) -> None:
    """Raise ContractError unless ``cls`` has CONTRACT's constructor and async methods."""
    for method_name, spec in CONTRACT["methods"].items():
        method = inspect.getattr_static(cls, method_name, None)
        if method is None:
            raise ContractError(name, f"{cls.__name__} has no method {method_name!r}")
        if isinstance(method, (staticmethod, classmethod)) or not callable(method):
            raise ContractError(name, f"{cls.__name__}.{method_name} must be a plain instance method")
        if spec["async"] and not inspect.iscoroutinefunction(method):
            raise ContractError(name, f"{cls.__name__}.{method_name} must be 'async def'")
        _check_params(cls, method, method_name, spec["params"], name)
    init = cls.__init__
    _check_params(cls, init, "__init__", CONTRACT["constructor"]["params"], name)


def _check_params(cls: type, func, label: str, expected: list[str], name: str) -> None:
    params = list(inspect.signature(func).parameters.values())
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    if len(required) > len(expected) or (len(positional) < len(expected) and not var_positional):
        got = ", ".join(p.name for p in params)
        raise ContractError(
            name, f"{cls.__name__}.{label} takes ({got}); the contract calls it as ({', '.join(expected)})"
        )
