"""Genome: a memory design's source text, normalised, and the content hash that identifies it.

A genome is what the engine stores, mutates and ships to the sandbox: one Python module that satisfies the
memory-design contract (:mod:`harness.design`). Text from an LLM often wraps the code in a markdown fence and
differs from an equal design only in layout, so :func:`normalise_source` first pulls the code out of the fence
and then normalises what is layout only -- line endings, a byte-order mark, trailing whitespace, tabs in
indentation, blank lines at either end, exactly one final newline -- while leaving the inside of string literals
untouched (a prompt template keeps its exact text). The id is ``harness.loader.source_hash`` of the normalised
source, so the harness (which names a loaded design's module after the same hash) and the engine agree on it.

libcst parses and re-emits a module byte for byte, so a libcst round trip normalises nothing; the layout rules
above are applied with Python's tokenizer, which tells code from string contents (and tab expansion is checked
to leave the AST unchanged).

The design's anatomy as the validator and the operators see it (import aliases, design classes, members, the
contract check) lives in :mod:`engine.code.syntax`.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from harness.design import CONTRACT
from harness.loader import source_hash

_FENCE_RE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[\w.+-]*)[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_OPEN_FENCE_RE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[ \t]*(?:python3?|py3?)?[ \t]*\n", re.MULTILINE | re.IGNORECASE)
_PYTHON_INFO = {"python", "py", "python3", "py3"}
_INDENT_TAB = 4  # a tab in indentation becomes this many spaces (any width keeps valid Python's structure)


class GenomeError(ValueError):
    """A Genome was built from inconsistent parts (an id that is not the hash of its normalised source)."""


def parses(source: str) -> bool:
    """Whether ``source`` is syntactically valid Python for this interpreter (static: nothing is executed)."""
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def extract_code(text: str) -> str:
    """The Python code in ``text``: the text itself when it already parses, else the largest fenced block
    tagged ``python`` (or ``py``), else the largest fenced block of any kind, else what follows a fence that
    is never closed, else the text unchanged."""
    if parses(text):
        return text
    blocks = [(m.group("info").lower(), m.group("body")) for m in _FENCE_RE.finditer(text)]
    if not blocks:  # a fence that is never closed (a small model's habit, or a reply cut at max_tokens)
        opened = _OPEN_FENCE_RE.search(text)
        return _dedent(text[opened.end():]) if opened else text
    tagged = [body for info, body in blocks if info in _PYTHON_INFO]
    return _dedent(max(tagged or [body for _, body in blocks], key=len))


def _dedent(block: str) -> str:
    lines = block.split("\n")
    margins = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    cut = min(margins, default=0)
    return "\n".join(line[cut:] for line in lines)


def _string_lines(code: str) -> tuple[set[int], set[int]] | None:
    """Rows whose start, and rows whose end, lie inside a multi-line string token (1-based), or ``None`` when
    the code does not tokenize (then every line is treated as code)."""
    starts: set[int] = set()
    ends: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            first, last = tok.start[0], tok.end[0]
            if tok.type == tokenize.STRING and last > first:
                ends.update(range(first, last))
                starts.update(range(first + 1, last + 1))
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return starts, ends


def _expand_indent(line: str) -> str:
    body = line.lstrip(" \t")
    indent = line[: len(line) - len(body)]
    return indent.expandtabs(_INDENT_TAB) + body if "\t" in indent else line


def normalise_source(text: str) -> str:
    """Normalised source of a design given as code or as markdown with a fenced code block (idempotent)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    code = extract_code(text)
    result = _normalise_layout(code, expand_tabs=True)
    if "\t" in code and parses(code) and ast.dump(ast.parse(code)) != ast.dump(ast.parse(result or "pass")):
        result = _normalise_layout(code, expand_tabs=False)  # never let tab expansion change what the code means
    return result


def _normalise_layout(code: str, expand_tabs: bool) -> str:
    inside = _string_lines(code)
    starts, ends = inside if inside is not None else (set(), set())
    out = []
    for row, line in enumerate(code.split("\n"), 1):
        if expand_tabs and row not in starts:
            line = _expand_indent(line)
        if row not in ends:
            line = line.rstrip(" \t\f\v")
        out.append(line)
    # blank lines at either end lie outside every token, hence outside every string
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


_CLASS_RE = re.compile(r"^class\s+(\w+)\s*\(([^)]*)\)", re.MULTILINE)


def design_class_name(source: str) -> str | None:
    """Name of the first top-level class whose bases mention the contract's base class (a cheap text scan)."""
    base = CONTRACT["base_class"]
    for match in _CLASS_RE.finditer(source):
        if re.search(rf"\b{re.escape(base)}\b", match.group(2)):
            return match.group(1)
    return None


@dataclass(frozen=True)
class Genome:
    """One memory design as the engine sees it.

    Attributes:
        source: the normalised source (see :func:`normalise_source`).
        id: ``harness.loader.source_hash(source)``: 16 hex digits of sha256.
        name: a readable label, by default the design class's name.
        operator: how it was made: ``"seed"``, ``"meta"``, ``"mutate:constants"``, ``"swap:retrieve"``,
            ``"crossover"``, ... (empty when unknown).
        parents: ids of the genomes it was made from.
    """

    source: str
    id: str
    name: str
    operator: str = ""
    parents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.id != source_hash(self.source):
            raise GenomeError(
                f"genome {self.name!r}: id {self.id!r} is not the hash of its source "
                f"({source_hash(self.source)!r}); build genomes with Genome.from_text(text)"
            )

    @classmethod
    def from_text(cls, text: str, name: str | None = None, operator: str = "",
                  parents: tuple[str, ...] = ()) -> Genome:
        """Normalise ``text`` (code, or markdown with a fenced block) and identify it by its hash."""
        source = normalise_source(text)
        digest = source_hash(source)
        label = name or design_class_name(source) or f"design-{digest}"
        return cls(source=source, id=digest, name=label, operator=operator, parents=tuple(parents))

    @classmethod
    def from_file(cls, path: str | Path, operator: str = "seed") -> Genome:
        """Read a design file (e.g. a seed) as a genome; its name is the design class's, else the file stem."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        return cls.from_text(text, name=design_class_name(normalise_source(text)) or path.stem, operator=operator)
