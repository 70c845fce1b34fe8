"""What the gallery truth tests share: the problem sizes, centred differences of an author's own loss,
the error measure, and loading only the definitions a file needs. The ground truth of every gallery
label is that finite-difference gradient."""

import ast
import types

import numpy as np

N, D, H, K = 7, 5, 4, 3  # all different, so no transpose or mix-up goes unnoticed
STEP = 1e-6
AGREE, DISAGREE = 1e-7, 1e-3


def finite_differences(loss, params):
    """Centred differences of ``loss()`` in every entry of every array in ``params`` (mutated in place)."""
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            p[idx] = orig + STEP
            up = loss()
            p[idx] = orig - STEP
            down = loss()
            p[idx] = orig
            g[idx] = (up - down) / (2 * STEP)
        grads.append(g)
    return grads


def relative_error(got, expected):
    """Largest entry-wise error over all parameters, relative to the largest expected entry."""
    scale = max(np.max(np.abs(e)) for e in expected)
    assert scale > 1e-4, "a degenerate problem: the gradient is almost zero"
    worst = 0.0
    for g, e in zip(got, expected, strict=True):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != e.shape:
            return np.inf
        worst = max(worst, np.max(np.abs(g - e)) / scale)
    return worst


def labels(rng, n=N, k=K):
    """Integer labels with every class present, so that no output unit's gradient is trivially zero."""
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    return rng.permutation(y)


def needed_nodes(nodes, wanted):
    """(the imports of the names they use, the named top-level definitions) among the statements ``nodes``."""
    kept = [
        node
        for node in nodes
        if (isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in wanted)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in node.targets))
    ]
    used = {n.id for node in kept for n in ast.walk(node) if isinstance(n, ast.Name)}
    imports = []
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
            if names:
                imports.append(type(node)(**{**node.__dict__, "names": names}))
    return imports, kept


def definitions(source_chunks, wanted):
    """Execute only the named top-level definitions in ``source_chunks``, and the imports they use."""
    nodes = []
    for chunk in source_chunks:
        try:
            nodes += ast.parse(chunk).body
        except SyntaxError:
            continue  # a Python 2 statement: not needed
    imports, kept = needed_nodes(nodes, wanted)
    namespace = {}
    exec(compile(ast.Module(imports + kept, []), "<gallery>", "exec"), namespace)
    missing = set(wanted) - set(namespace)
    assert not missing, f"definitions not found: {missing}"
    return types.SimpleNamespace(**namespace)
