"""The code is ruff-clean: lint and format, with the configuration in pyproject.toml."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    proc = subprocess.run([ruff, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 50


def oversized(root=ROOT, packages=("mlpnn_jax", "reference")):
    """'path: N lines' for every module over the limit, 'path:line name: N lines' for every function."""
    found = []
    for path in sorted(p for pkg in packages for p in (root / pkg).rglob("*.py")):
        name = path.relative_to(root).as_posix()
        source = path.read_text()
        if (n := len(source.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{name}: {n} lines (at most {MAX_MODULE_LINES})")
        functions = [f for f in ast.walk(ast.parse(source)) if isinstance(f, ast.FunctionDef)]
        for f in functions:
            if (n := f.end_lineno - f.lineno + 1) > MAX_FUNCTION_LINES:
                found.append(f"{name}:{f.lineno} {f.name}: {n} lines (at most {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_is_too_long():
    found = oversized()
    assert not found, "split these:\n" + "\n".join(found)


def test_the_size_check_finds_a_long_module_and_function(tmp_path):
    pkg = tmp_path / "mlpnn_jax"
    pkg.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "long.py").write_text("def f():\n" + body + "\n" * MAX_MODULE_LINES)
    (pkg / "short.py").write_text("def g():\n" + body[: -len(body.splitlines()[-1]) - 1])
    assert oversized(tmp_path, ("mlpnn_jax",)) == [
        f"mlpnn_jax/long.py: {1 + MAX_FUNCTION_LINES + MAX_MODULE_LINES} lines (at most 500)",
        f"mlpnn_jax/long.py:1 f: {MAX_FUNCTION_LINES + 1} lines (at most 50)",
    ]


def package_imports(root=ROOT, package="mlpnn_jax"):
    """{module: the package's modules it imports, at its top or inside functions} of a package."""
    graph = {}
    for path in sorted((root / package).glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
                found |= (
                    {node.module} if node.module != package else {f"{package}.{a.name}" for a in node.names}
                )
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith(f"{package}.")}
        graph[f"{package}.{path.stem}"] = {
            m for m in found if m in {f"{package}.{p.stem}" for p in path.parent.glob("*.py")}
        }
    return graph


def cycles(graph):
    """The modules that reach themselves through the import graph."""

    def reach(start):
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return seen

    return sorted(m for m in graph if m in reach(m))


def test_the_cli_and_the_console_script_import_no_cycle():
    in_cycles = set(cycles(package_imports()))
    assert not in_cycles & {"mlpnn_jax.cli", "mlpnn_jax.console", "mlpnn_jax.terminal"}, sorted(in_cycles)


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == ["a", "b"]
