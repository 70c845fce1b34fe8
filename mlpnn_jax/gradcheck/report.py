"""What ``check_backprop`` found: the Report, its diagnoses and per-parameter checks, as text or JSON."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

RTOL = 1e-7  # per entry, relative ...
FLOOR = 1e-6  # ... to at least this fraction of the parameter's largest entry


@dataclasses.dataclass(frozen=True)
class Finding:
    """What one check found: ``code`` (a key of rules.CODES), a message, the parameters it concerns
    (as the user's code names them), ``level`` ("error" or "note"), and the problems it was seen on
    (() until gathered)."""

    code: str
    message: str
    params: tuple = ()
    level: str = "error"
    problems: tuple = ()


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """One line of the report: ``code`` (a key of rules.CODES), a message, the parameters it
    concerns, and ``level``: "error" (the check fails) or "note"."""

    code: str
    message: str
    params: tuple = ()
    level: str = "error"

    def to_json(self):
        return {"code": self.code, "level": self.level, "params": list(self.params), "message": self.message}


@dataclasses.dataclass(frozen=True)
class ParamCheck:
    """The comparison for one parameter over all problems (the worst case over problems).

    ``max_rel_err`` is max|got - expected| / max(max|got|, max|expected|); ``max_entry_rel_err`` is the
    worst entry under the pass rule |got - expected| / max(|got|, |expected|, FLOOR * scale), which must
    be <= RTOL; ``worst`` is (problem, index) of that entry. None where nothing could be compared.
    """

    name: str
    expected_shape: str
    got_shape: str | None
    status: str
    max_abs_err: float | None
    max_rel_err: float | None
    max_entry_rel_err: float | None
    worst: tuple | None
    per_problem: tuple

    @property
    def ok(self):
        return self.status in ("ok", "saturated")

    def to_json(self):
        return {
            "ok": self.ok,
            "status": self.status,
            "expected_shape": self.expected_shape,
            "got_shape": self.got_shape,
            "max_abs_err": json_float(self.max_abs_err),
            "max_rel_err": json_float(self.max_rel_err),
            "max_entry_rel_err": json_float(self.max_entry_rel_err),
            "worst": None if self.worst is None else {"problem": self.worst[0], "index": list(self.worst[1])},
            "problems": [jsonable(p) for p in self.per_problem],
        }


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``check_backprop`` found: ``ok``, ``inferred`` (sentences), ``network`` (the reference's
    description), ``params`` (name -> ParamCheck), ``diagnoses``, ``codes``, ``to_table()``, ``to_json()``."""

    function: str
    loss: str
    options: dict
    soft_targets: bool
    seed: int
    problems: tuple
    params: dict
    diagnoses: tuple
    reference_check: dict
    inferred: tuple = ()
    network: str = ""
    convention: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self):
        return (
            all(p.ok for p in self.params.values())
            and not any(d.level == "error" for d in self.diagnoses)
            and bool(self.reference_check["ok"])
        )

    @property
    def codes(self):
        """The codes of the error-level diagnoses (a frozenset)."""
        return frozenset(d.code for d in self.diagnoses if d.level == "error")

    def to_json(self):
        return {
            "ok": self.ok,
            "function": self.function,
            "inferred": list(self.inferred),
            "convention": jsonable(self.convention),
            "network": self.network,
            "loss": self.loss,
            "options": dict(self.options),
            "soft_targets": self.soft_targets,
            "seed": self.seed,
            "tolerance": {
                "rtol": RTOL,
                "floor": FLOOR,
                "rule": "|got - expected| <= rtol * max(|got|, |expected|, floor * max|parameter|)",
            },
            "problems": [jsonable(p) for p in self.problems],
            "params": {k: v.to_json() for k, v in self.params.items()},
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "reference_check": jsonable(self.reference_check),
            "table": self.to_table(),  # the text report, for tools that print it beside the JSON
        }

    def to_table(self):
        opts = "".join(f", {k}={v}" for k, v in self.options.items())
        targets = "target distributions" if self.soft_targets else "integer labels"
        verdict = "OK" if self.ok else "FAILED"
        lines = [*self.inferred, ""] if self.inferred else []
        lines += [
            f"gradcheck {self.function}: loss {self.loss!r}{opts}, {targets}, seed {self.seed}: {verdict}"
        ]
        if self.network:
            lines.append(f"reference network: {self.network}")
        lines += ["", "problems:"]
        for p in self.problems:
            redrawn = f" (redrawn {p['redrawn']}x)" if p["redrawn"] else ""
            sizes = " ".join(f"{k}={v:<3}" for k, v in p.items() if k not in ("name", "regime", "redrawn"))
            lines.append(f"  {p['name']:<14} {sizes} {p['regime']}{redrawn}")
        lines += ["", *_table(self.params.values())]
        errors = [d for d in self.diagnoses if d.level == "error"]
        notes = [d for d in self.diagnoses if d.level != "error"]
        for title, group in (("diagnoses:", errors), ("notes:", notes)):
            if group:
                lines += ["", title]
                lines += [f"  [{d.code}] {d.message}" for d in group]
        r = self.reference_check
        lines += [
            "",
            f"reference: {r['what']} {'matches' if r['ok'] else 'DOES NOT match'} {r['method']} on "
            f"{r['problem']}: max rel err {fmt(r['max_rel_err'])} (tolerance {r['tolerance']:g})",
            f"tolerance: each entry within {r.get('rtol', RTOL):g} relative, entries below {FLOOR:g} x their "
            f"parameter's largest judged against {FLOOR:g} x it",
        ]
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


def _table(checks):
    header = (
        "param",
        "expected",
        "got",
        "max abs err",
        "max rel err",
        "entry rel err",
        "worst entry",
        "result",
    )
    rows = [header]
    for c in checks:
        worst = "-" if c.worst is None else f"{c.worst[0]} {list(c.worst[1])}"
        result = "ok" if c.ok else f"FAIL ({c.status})"
        errors = (fmt(c.max_abs_err), fmt(c.max_rel_err), fmt(c.max_entry_rel_err))
        rows.append((c.name, c.expected_shape, c.got_shape or "-", *errors, worst, result))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def fmt(x):
    return "-" if x is None else f"{x:.1e}"


def json_float(x):
    return None if x is None or not math.isfinite(x) else float(x)


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return json_float(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
