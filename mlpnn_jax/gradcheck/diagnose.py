"""From Findings to the Report's diagnoses: per-problem findings gathered, then merged by code."""

from __future__ import annotations

import dataclasses

from mlpnn_jax.gradcheck.report import Diagnosis
from mlpnn_jax.gradcheck.rules import where


def gather(per_problem):
    """One Finding per distinct finding over the problems ({name: [Finding]}, in the order to keep),
    with the problems it was seen on; an error's message is the first problem's."""
    seen = {}
    for name, found in per_problem.items():
        for f in found:
            key = (f.code, f.params, f.level, f.message if f.level == "note" else None)
            seen.setdefault(key, (f, []))[1].append(name)
    return [dataclasses.replace(f, problems=tuple(on)) for f, on in seen.values()]


def merge_findings(findings, order, labels):
    """One error Diagnosis per code (messages joined, parameters united), and the notes by code."""
    merged, notes = {}, {}
    for f in findings:
        if f.level == "error":
            entry = merged.setdefault(f.code, ([], []))
            entry[0].append(f.message + where(f.problems, order))
            entry[1].extend(f.params)
        else:
            notes.setdefault(f.code, []).append((f.message + where(f.problems, order), f.params))
    out = [Diagnosis(code, "; ".join(m), _ordered(ps, labels)) for code, (m, ps) in merged.items()]
    return out, notes


def _ordered(params, labels):
    names = list(labels.values())
    return tuple(p for p in names if p in params)


_NOTE_PREFIX = {
    "warning": "the function warned: ",
    "saturation": "NaN or inf only where the units saturate (your arithmetic overflows there, e.g. exp "
    "without subtracting the max, or 1 / (1 - a); the formulas are judged on the other problems): ",
}


def note_diagnoses(notes, labels):
    """One note Diagnosis per code: the first three messages, and how many more."""
    out = []
    for code, items in notes.items():
        shown = "; ".join(m for m, _ in items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        prefix = _NOTE_PREFIX.get(code, "")
        params = _ordered([k for _, ps in items for k in ps], labels)
        out.append(Diagnosis(code, f"{prefix}{shown}{more}", params, "note"))
    return out
