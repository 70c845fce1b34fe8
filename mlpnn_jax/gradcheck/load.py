"""Loading a user's function from a .py file or a notebook without running the file.

Only what the named function needs is executed: its definition and the module-level definitions,
imports and constants it uses (followed transitively, and into sibling modules such as ``utils.py``
the same way). Top-level statements (loading data, training, printing), notebook magics and shell
lines never run. A file that is not valid Python 3 as a whole (Python 2 prints elsewhere) still loads
when the needed parts parse (see ``source``): a function or method that does not parse is a stub that
raises ``NotPython3`` if called. Every piece left out is named in ``skipped_summary``. Sibling
modules are loaded under private names and the user's folder is never put on ``sys.path``, so a
student's own ``reference.py`` or ``jax.py`` cannot shadow the checker's modules.
"""

from __future__ import annotations

import ast
import builtins
import re
import types
from pathlib import Path

from mlpnn_jax.gradcheck.source import LoadError, read_chunks

__all__ = [
    "LoadError",
    "NotPython3",
    "defines",
    "load",
    "precheck",
    "skipped_summary",
    "split_target",
    "uses",
]

_PRIVATE = "_mlpnn_gradcheck_user_"
_SAFE_CALLS = {
    "float",
    "int",
    "str",
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "range",
    "len",
    "dtype",
    "array",
    "asarray",
    "zeros",
    "ones",
    "eye",
    "arange",
    "sqrt",
    "exp",
    "log",
    "float64",
    "float32",
}


class NotPython3(LoadError):
    """The checked code called a function or method of the user's that is not valid Python 3."""


def _stub(broken):
    """A stand-in for a definition that does not parse: it raises, naming it, if called."""

    def stub(*args, **kwargs):
        raise NotPython3(f"{broken.message()}, and the checked code calls it")

    stub.__name__, stub.__qualname__ = broken.name.rpartition(".")[2], broken.name
    stub.not_python3 = broken
    return stub


DATA_CALL = re.compile(
    r"^(read|load|open|fetch|download|urlopen|urlretrieve|genfromtxt|input|train|fit|show|plot|savefig|run|main|get_data|mnist)",
    re.I,
)


def defines(node):
    """The names a top-level statement binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom):
        return {a.asname or a.name for a in node.names}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {name for t in targets for name in _bound(t)}
    return set()


def _bound(target):
    """The names an assignment target binds (not those it subscripts or takes attributes of)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Tuple | ast.List):
        return {n for e in target.elts for n in _bound(e)}
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return set()


def uses(node):
    """The free names a statement reads (a function's own arguments and locals left out)."""
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    local = set()
    for f in ast.walk(node):
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = f.args
            local |= {
                x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x is not None
            }
            local |= {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return loads - local


def _attruses(node, alias):
    return {
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == alias
    }


def _runs_code(node, local_defs):
    """Whether an assignment's value calls the user's code or something that loads data."""
    for n in ast.walk(node.value if node.value is not None else node):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name) and (f.id in local_defs or f.id not in _SAFE_CALLS):
                return True
            if isinstance(f, ast.Attribute) and DATA_CALL.match(f.attr):
                return True
    return False


class Module:
    """A user's file, parsed statement by statement, whose definitions load on demand."""

    def __init__(self, path, modules):
        self.path, self.modules = path, modules  # modules: path -> Module (shared cache)
        self.chunks, self.skipped = read_chunks(path)
        self.defs = {}
        self.broken = {b.name: b for c in self.chunks for b in c.broken}  # "helper", "Net.train"
        for c in self.chunks:
            if c.node is not None:
                for name in defines(c.node):
                    self.defs[name] = c  # the last binding wins, as when the file runs
        self.namespace = {
            "__name__": _PRIVATE + re.sub(r"\W", "_", path.stem),
            "__file__": str(path),
            "__builtins__": builtins,
        }
        self.loaded = set()
        self.sources = {}
        self.ran = set()  # the ids of the top-level statements run to build an instance (``builder``)

    def need(self, name):
        """Load ``name`` and what it uses; False when the file does not define it."""
        if name in self.loaded:
            return True
        chunk = self.defs.get(name)
        if chunk is None and name in self.broken:
            self.namespace[name] = _stub(self.broken[name])
            self.loaded.add(name)
            return True
        if chunk is None:
            return self._from_star(name)
        self.loaded.add(name)
        node = chunk.node
        if isinstance(node, ast.Import | ast.ImportFrom):
            self._import(node, chunk, name)
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign) and _runs_code(node, self.defs):
            self.skipped.append(
                f"{chunk.where}: {chunk.text.splitlines()[0][:50]!r} (assigns {name} by running code at "
                "import: not run)"
            )
            return True
        for used in sorted(uses(node) - {name}):
            if used not in vars(builtins) or used in self.defs:
                self.need(used)
        self._exec(chunk)
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not chunk.broken:
            self.sources[name] = chunk.text
        return True

    def _exec(self, chunk):
        code = compile(ast.Module(body=[chunk.node], type_ignores=[]), chunk.filename, "exec")
        exec(code, self.namespace)  # a definition, import or constant, never a statement with effects
        for b in chunk.broken:  # a class's methods that do not parse
            setattr(self.namespace[chunk.node.name], b.name.rpartition(".")[2], _stub(b))

    def _sibling(self, dotted, level):
        """The user's own module file for an import, or None (a library)."""
        parts = (dotted or "").split(".") if dotted else []
        if level:
            bases = [self.path.parent.parents[level - 2] if level > 1 else self.path.parent]
        else:
            bases = [self.path.parent, *list(self.path.parent.parents)[:3]]
        for base in bases:
            for candidate in (
                base.joinpath(*parts).with_suffix(".py") if parts else None,
                base.joinpath(*parts, "__init__.py"),
            ):
                if (
                    candidate is not None
                    and candidate.is_file()
                    and candidate.resolve() != self.path.resolve()
                ):
                    return candidate.resolve()
        return None

    def module(self, path):
        if path not in self.modules:
            self.modules[path] = Module(path, self.modules)
        return self.modules[path]

    def _import(self, node, chunk, name):
        first = chunk.text.strip().splitlines()[0][:60]
        if isinstance(node, ast.ImportFrom):
            alias = next(a for a in node.names if (a.asname or a.name) == name)
            sib = self._sibling(node.module, node.level)
            if sib is not None:
                mod = self.module(sib)
                if mod.need(alias.name):
                    self.namespace[name] = mod.namespace[alias.name]
                    self.skipped += [
                        f"{sib.name}: {s}" for s in mod.skipped if f"{sib.name}: {s}" not in self.skipped
                    ]
                else:
                    self.skipped.append(f"{chunk.where}: {first!r} ({sib.name} defines no {alias.name})")
                return
            single = ast.ImportFrom(module=node.module, names=[alias], level=0)
        else:
            alias = next(a for a in node.names if (a.asname or a.name).split(".")[0] == name)
            sib = self._sibling(alias.name, 0)
            if sib is not None:
                self._import_module(sib, name)
                return
            single = ast.Import(names=[alias])
        ast.fix_missing_locations(single)
        try:
            exec(compile(ast.Module(body=[single], type_ignores=[]), chunk.filename, "exec"), self.namespace)
        except ImportError as e:
            self.skipped.append(f"{chunk.where}: {first!r} ({type(e).__name__}: {e})")

    def _import_module(self, sib, alias):
        """``import utils`` of a sibling: a private module holding the attributes the file uses."""
        mod = self.module(sib)
        proxy = types.ModuleType(mod.namespace["__name__"])
        for c in self.chunks:
            if c.node is not None and isinstance(c.node, ast.FunctionDef | ast.ClassDef):
                for attr in _attruses(c.node, alias):
                    if mod.need(attr):
                        setattr(proxy, attr, mod.namespace[attr])
        self.namespace[alias] = proxy

    def _from_star(self, name):
        for c in self.chunks:
            node = c.node
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                sib = self._sibling(node.module, node.level)
                if sib is not None and self.module(sib).need(name):
                    self.namespace[name] = self.module(sib).namespace[name]
                    return True
        return False


def split_target(spec):
    """'PATH:NAME' -> (Path, NAME), checking the form (LoadError otherwise)."""
    if ":" not in spec:
        raise LoadError(f"expected FILE.py:FUNCTION (or FILE.ipynb:FUNCTION); got {spec!r}")
    file, name = spec.rsplit(":", 1)
    if not file or not name:
        raise LoadError(f"expected FILE.py:FUNCTION; got {spec!r}")
    if not all(part.isidentifier() for part in name.split(".")) or name.count(".") > 1:
        raise LoadError(
            f"{name!r} is not a function name (expected FILE.py:FUNCTION or FILE.py:Class.method)"
        )
    path = Path(file).expanduser()
    if path.suffix not in (".py", ".ipynb"):
        raise LoadError(f"{file}: not a .py file or a notebook (expected FILE.py:FUNCTION)")
    if not path.is_file():
        raise LoadError(f"{file}: no such file")
    return path.resolve(), name


def precheck(spec):
    """Raise LoadError (the same one-line error ``load`` would) for a PATH:NAME whose file or
    definition is missing, without executing anything: a cheap check before starting a child."""
    path, name = split_target(spec)
    module = Module(path, {})
    head = name.partition(".")[0]
    if head not in module.defs:
        _missing(module, path, head)


def _missing(module, path, head):
    if head in module.broken:
        raise LoadError(f"{path.name}: {module.broken[head].message()}")
    defined = sorted(k for k, c in module.defs.items() if isinstance(c.node, ast.FunctionDef | ast.ClassDef))
    known = f" (functions defined there: {', '.join(defined)})" if defined else ""
    raise LoadError(f"{path.name} has no function {head!r}{known}")


def load(path, names, modules=None):
    """{name: object} for each NAME or Class.method of the file, with the Module they came from."""
    modules = {} if modules is None else modules
    module = modules.get(path) or Module(path, modules)
    modules[path] = module
    out = {}
    for name in names:
        head, _, attr = name.partition(".")
        if not module.need(head):
            _missing(module, path, head)
        obj = module.namespace[head]
        if attr:
            if not isinstance(obj, type) or not hasattr(obj, attr):
                raise LoadError(f"{path.name}: {head} has no method {attr!r}")
            obj = getattr(obj, attr)
        if hasattr(obj, "not_python3"):
            raise LoadError(f"{path.name}: {obj.not_python3.message()}")
        if not callable(obj):
            raise LoadError(f"{path.name}:{name} is {_describe(obj)}, not a function")
        out[name] = obj
    return out, module


def _describe(obj):
    from mlpnn_jax.gradcheck.compare import describe_value

    return describe_value(obj)


def _definition_or_docstring(node):
    kinds = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom
    return isinstance(node, kinds) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))


def skipped_summary(module, limit=8):
    """The pieces of the file that were not run, in a few words each."""
    loaded_chunks = {id(module.defs[n]) for n in module.loaded if n in module.defs} | module.ran
    out = list(module.skipped)
    for c in module.chunks:
        if c.node is None:
            out.append(f"{c.where}: not valid Python 3 ({c.error})")
        elif c.broken:
            out += [f"{b.message()}; it raises if called" for b in c.broken]
        elif id(c) not in loaded_chunks and not _definition_or_docstring(c.node):
            out.append(f"{c.where}: {c.text.strip().splitlines()[0][:50]!r}")
    if len(out) > limit:
        out = [*out[:limit], f"and {len(out) - limit} more top-level statements"]
    return out
