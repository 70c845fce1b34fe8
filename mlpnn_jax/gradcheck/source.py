"""A user's file (or notebook) as pieces: its top-level statements, each parsed on its own.

A file that is valid Python 3 is parsed once. One that is not (Python 2 prints, a stray magic) is cut
at each unindented line and each piece parsed alone; a class that still does not parse is read method
by method, keeping the methods that parse and naming each one that does not in ``Chunk.broken`` (the
loader turns it into a stub that raises if called). Notebooks are plain JSON, read here in both
layouts: nbformat 4 (``cells[].source``) and nbformat 3 (``worksheets[].cells[].input``); each cell is
compiled under the name ``NOTEBOOK.ipynb[cell N]``, with its code registered in ``linecache``, so that
tracebacks show the cell's own lines.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import linecache
import re
from pathlib import Path

_HEADER = re.compile(r"(?:[ \t]*(?:[@#].*)?\n)*[ \t]*(?:async[ \t]+)?(def|class)[ \t]+(\w+)")
_CLASS_HEADER_LINES = 20  # the most lines a class statement (decorators, bases) is looked for in
_CELL_NAME = re.compile(r"^(.*)\[cell (\d+)\]$")


class LoadError(ValueError):
    """The function cannot be loaded (one line, naming the file)."""


@dataclasses.dataclass(frozen=True)
class Broken:
    """A function or method that is not valid Python 3: its name, where it is, the parser's error."""

    name: str  # "helper" or "Net.train"
    where: str  # "line 40", or "cell 3, line 2"
    error: str

    def message(self):
        return f"{self.name} ({self.where}) is not valid Python 3: {self.error}"


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One top-level statement (or unparseable block): where, its text, its parsed node or None."""

    where: str
    text: str
    node: object
    filename: str  # what the compiled code (and so a traceback) names
    error: str = ""
    broken: tuple = ()  # Broken: the block's own def when node is None, or a class's methods


def where(filename, lineno):
    """'net.py, line 3' or, for a notebook cell's code, 'net.ipynb, cell 5, line 3'."""
    cell = _CELL_NAME.match(filename)
    if cell:
        return f"{Path(cell.group(1)).name}, cell {cell.group(2)}, line {lineno}"
    return f"{Path(filename).name}, line {lineno}"


# ------------------------------------------------------------------------------------- notebooks

_NOTEBOOK_LAYOUTS = (  # (the key that tells the layout, its cells, the key of a cell's code)
    ("worksheets", lambda nb: [c for ws in nb["worksheets"] for c in ws.get("cells", [])], "input"),
    ("cells", lambda nb: nb["cells"], "source"),
)


def notebook_cells(path):
    """(number, code) of each code cell of a notebook, numbered among all its cells from 1."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LoadError(f"{path}: not a readable notebook ({e})") from e
    layout = next((lay for lay in _NOTEBOOK_LAYOUTS if isinstance(nb, dict) and lay[0] in nb), None)
    if layout is None:
        raise LoadError(f"{path}: not a notebook (expected nbformat 3 or 4: no 'cells' or 'worksheets')")
    key, cells, code_key = layout
    try:
        out = [
            (i, _text(cell.get(code_key, "")))
            for i, cell in enumerate(cells(nb), 1)
            if cell.get("cell_type") == "code"
        ]
    except (AttributeError, TypeError) as e:
        raise LoadError(f"{path}: not a readable notebook (its {key!r} are not cells: {e})") from e
    return out


def _text(src):
    """A cell's code, stored as one string or as a list of lines."""
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src)
    if isinstance(src, str):
        return src
    raise TypeError(f"a cell's code is {type(src).__name__}, not text")


def _cells(path):
    """(label, filename, source) per code cell, magics and shell lines blanked (and reported)."""
    out, skipped = [], []
    for i, src in notebook_cells(path):
        if src.lstrip().startswith("%%"):
            skipped.append(f"cell {i}: a cell magic ({src.strip().splitlines()[0][:40]})")
            continue
        lines = []
        for line in src.splitlines():
            if line.lstrip().startswith(("%", "!")):
                skipped.append(f"cell {i}: {line.strip()[:40]!r} (a magic or shell line)")
                lines.append("")
            else:
                lines.append(line)
        filename = f"{path}[cell {i}]"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        out.append((f"cell {i}", filename, "\n".join(lines)))
    return out, skipped


# ------------------------------------------------------------------------------------ the pieces


def _blocks(text):
    """Top-level blocks: a new one starts at each unindented line (decorators stay with their def)."""
    lines = text.splitlines()
    starts = []
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith(("#", ")", "]", "}")):
            if (
                starts
                and lines[starts[-1]].startswith("@")
                and all(lines[j].startswith("@") or not lines[j].strip() for j in range(starts[-1], i))
            ):
                continue
            if re.match(r"(else|elif|except|finally)\b", line) and starts:
                continue
            starts.append(i)
    starts.append(len(lines))
    return [(starts[k], "\n".join(lines[starts[k] : starts[k + 1]])) for k in range(len(starts) - 1)]


def _syntax(e):
    """The parser's error in a few words, with the offending line."""
    text = (e.text or "").strip()[:50]
    return f"SyntaxError: {e.msg} (line {e.lineno}: {text!r})"


def _header(block):
    """('def' or 'class', name) of the definition a block starts with, or ('', '')."""
    m = _HEADER.match(block)
    return (m.group(1), m.group(2)) if m else ("", "")


def chunks(text, label, filename):
    """The file (or cell) as Chunks: whole when it parses, else per top-level block."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return [c for start, block in _blocks(text) for c in _piece(start, block, label, filename)]
    lines = text.splitlines()
    return [
        Chunk(f"{label}line {n.lineno}", "\n".join(lines[n.lineno - 1 : n.end_lineno]), n, filename)
        for n in tree.body
    ]


def _piece(start, block, label, filename):
    """The Chunks of one block of a file that does not parse whole: its statements, a class read
    method by method, or one broken Chunk."""
    at = f"{label}line {start + 1}"
    try:
        body = ast.parse("\n" * start + block).body
        return [Chunk(f"{label}line {n.lineno}", block, n, filename) for n in body]
    except SyntaxError as e:
        error = _syntax(e)
    kind, name = _header(block)
    by_method = _class_by_method(start, block, label, filename, name) if kind == "class" else None
    if by_method is not None:
        return [by_method]
    broken = (Broken(name, at, error),) if kind == "def" else ()
    return [Chunk(at, block, None, filename, error, broken)]


def _class_head(lines):
    """The number of lines the class statement takes (decorators, bases), or None."""
    for h in range(1, min(len(lines), _CLASS_HEADER_LINES) + 1):
        try:
            tree = ast.parse("\n".join(lines[:h]) + "\n pass")
        except SyntaxError:
            continue
        if tree.body and isinstance(tree.body[0], ast.ClassDef):
            return h
    return None


def _class_by_method(start, block, label, filename, name):
    """A class whose body does not parse whole, as a Chunk of its methods that parse (the others in
    ``broken``); None when a statement other than a def does not parse."""
    lines = block.splitlines()
    head = _class_head(lines)
    indent = next(
        (re.match(r"\s*", s).group() for s in lines[head or 0 :] if s.strip() and s.strip()[0] != "#"), ""
    )
    if head is None or not indent:
        return None
    body = [s[len(indent) :] if s.startswith(indent) else s.strip() and s for s in lines[head:]]
    node = ast.parse("\n" * start + "\n".join(lines[:head]) + "\n pass").body[0]
    node.body, broken = [], []
    for offset, piece in _blocks("\n".join(body)):
        line = start + head + offset
        try:
            node.body += ast.parse("\n" * line + piece).body
        except SyntaxError as e:
            kind, method = _header(piece)
            if kind != "def":
                return None
            broken.append(Broken(f"{name}.{method}", f"{label}line {line + 1}", _syntax(e)))
    node.body = node.body or [ast.Pass()]
    ast.fix_missing_locations(node)
    return Chunk(f"{label}line {node.lineno}", block, node, filename, broken=tuple(broken))


def read_chunks(path):
    """(chunks, skipped) of a .py file or a notebook."""
    if path.suffix == ".ipynb":
        cells, skipped = _cells(path)
        return [c for label, name, src in cells for c in chunks(src, f"{label}, ", name)], skipped
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    return chunks(text, "", str(path)), []
