"""Instances built as statements build them: the file's own top-level ones (``nn = Net();
nn.add(Dense(784, 128))``, never those that load, train or plot), or those of ``--setup``.

Each returns ``(build, how)``: ``build()`` makes a fresh instance by running the statements again in a
copy of the file's namespace, ``how`` says which statements, for the report's first line.
"""

from __future__ import annotations

import ast
import builtins

from mlpnn_jax.gradcheck import load


def from_file(module, cls_name):
    """(a function making a fresh instance of the class as the file's own top-level statements
    build one, those statements' text) or None: ``nn = Cls(...)`` with arguments made of the file's
    definitions and constants, then the calls on ``nn`` that follow (``nn.add(Dense(784, 128))``),
    never one that loads, trains or plots (``nn.train(...)``)."""
    statements, name = [], None
    for c in module.chunks:
        node = c.node
        if name is None and _constructs(node, cls_name):
            name, statements = node.targets[0].id, [c]
        elif name is not None and _calls_on(node, name) and not load.DATA_CALL.match(node.value.func.attr):
            statements.append(c)
        elif name is not None and name in load.defines(node):
            break
    used = {u for c in statements for u in load.uses(c.node) - {name}}
    if name is None or not all(module.need(u) for u in used if u not in vars(builtins) or u in module.defs):
        return None
    module.ran |= {id(c) for c in statements}
    code = compile(
        ast.Module(body=[c.node for c in statements], type_ignores=[]), statements[0].filename, "exec"
    )

    def build():
        namespace = dict(module.namespace)
        exec(code, namespace)  # the statements that build the instance, as the file runs them
        return namespace[name]

    text = "; ".join(c.text.strip().splitlines()[0] for c in statements)
    return build, f"{statements[0].where}: {text}"


def from_setup(module, code, target):
    """Run --setup's statements in the file's namespace, after the names they use: (a function making
    a fresh instance of the target's class as they make one, their text), or None where they bind
    none (they may still have set what the checked code reads). LoadError: they do not parse or raise."""
    try:
        tree = ast.parse(code, "--setup")
    except SyntaxError as e:
        raise load.LoadError(f"--setup is not valid Python: {e.msg} (line {e.lineno})") from e
    for used in sorted(load.uses(tree)):
        if used not in vars(builtins) or used in module.defs:
            module.need(used)
    compiled = compile(tree, "--setup", "exec")
    _run(compiled, module.namespace)
    head, _, method = target.partition(".")
    cls = module.namespace.get(head) if method else None
    if not isinstance(cls, type):
        return None
    bound = [n for node in tree.body for n in load.defines(node) if isinstance(module.namespace.get(n), cls)]
    if not bound:
        return None

    def build():
        namespace = dict(module.namespace)
        _run(compiled, namespace)
        return namespace[bound[-1]]

    return build, f"built by --setup: {code.strip()}"


def _run(compiled, namespace):
    """Run --setup's code in the namespace; its exception as one line (a LoadError)."""
    try:
        exec(compiled, namespace)  # the statements the user asked for, as they wrote them
    except Exception as e:
        raise load.LoadError(f"--setup raised {type(e).__name__}: {e}") from e


def _constructs(node, cls_name):
    """Whether a statement is ``name = cls_name(...)``."""
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == cls_name
    )


def _calls_on(node, name):
    """Whether a statement is a call of a method of ``name`` (``nn.add(...)``)."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and isinstance(node.value.func.value, ast.Name)
        and node.value.func.value.id == name
    )
