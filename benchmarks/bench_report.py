"""The plain-text report of benchmarks/bench.py: formatting only, no measuring."""

from __future__ import annotations


def table(headers, rows):
    """Plain text, columns aligned: text left, numbers right."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]

    def line(row):
        return "  ".join(
            c.rjust(w) if c[:1].isdigit() or c[:1] in "-+." else c.ljust(w)
            for c, w in zip(row, widths, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def duration(seconds):
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def seconds_list(values):
    return " ".join(f"{v:.2f}" for v in values)


def render_environment(env):
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} {b['architecture']} {b['num_threads']} threads"
        for b in env["blas"]
    )
    flags = ", ".join(f"{k}={v}" for k, v in env["env"].items() if v is not None) or "none set"
    return "\n".join(
        [
            f"date      {env['date']}",
            f"cpu       {env['cpu']}: {env['cores']} cores ({env['cores_usable']} usable)",
            f"software  python {env['python']}, jax {env['jax']}, jaxlib {env['jaxlib']},"
            f" numpy {env['numpy']}; jax devices {', '.join(env['jax_devices'])}",
            f"blas      {blas or 'none found'}",
            f"env       {flags}",
        ]
    )


def render_epochs(results):
    peaks = results["gemm_peaks"]
    epoch = results["notebook_epoch"]
    head = (
        f"Notebook epoch ({epoch['gflop']:.1f} GFLOP of GEMMs: {epoch['n_train']}-sample forward + backward"
        f" + update, {epoch['n_test']}-sample test forward)\n"
        f"GEMM peaks measured ({peaks['n']}^3, best of {peaks['repeats']}): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items() if k not in ("n", "repeats"))
    )
    rows = [
        [
            r["config"],
            f"{r['epoch_s']:.3f}",
            seconds_list(r["each_s"]),
            f"{r['gflops']:.1f}",
            f"{100 * r['fraction_of_peak']:.0f}% of {r['peak']}",
            duration(r["notebook_2000_epochs_s"]),
            f"{r['first_call_s']:.1f}" if "first_call_s" in r else "-",
        ]
        for r in epoch["rows"]
    ]
    headers = ["config", "s/epoch", "each (s/epoch)", "GFLOP/s", "of peak", "2000 epochs", "1st call s"]
    return head + "\n" + table(headers, rows)


def render_training(result, target, goal, start):
    rows = [
        [
            r["config"],
            f"{r['median_s']:.1f}",
            f"{r['min_s']:.1f}",
            seconds_list(r["each_s"]),
            " ".join(str(e) if e else "no" for e in r["epochs_to_target"]),
            f"{r['max_rss_mb']:.0f}",
        ]
        for r in result["rows"]
    ]
    headers = ["process", "median s", "min s", "each s", f"epoch of {100 * target:.0f}%", "max RSS MB"]
    verdict = "PASS" if result["ratio_median"] <= goal else "FAIL"
    if not all(all(r["reached"]) for r in result["rows"]):
        verdict += "; not every run reached the target, so the ratio compares unequal work"
    commands = "\n".join(f"  {r['config']}: {r['command']}" for r in result["rows"])
    return (
        f"Time to {100 * target:.0f}% test accuracy, whole process, {start}, interleaved"
        f" ({len(result['rows'][0]['each_s'])} repeats)\n{commands}\n{table(headers, rows)}\n"
        f"ratio ours / baseline (medians): {result['ratio_median']:.2f}"
        f"  (goal <= {goal}: {verdict})\n"
        f"{result['cache']}"
    )


def render_trainings(result, target, goal):
    """The cold and the warm table, or why there are none."""
    if "skipped" in result:
        return [f"Time to {100 * target:.0f}% test accuracy: skipped ({result['skipped']})"]
    return [render_training(result[start], target, goal, start) for start in ("cold", "warm")]


def render_memory(rows):
    body = [
        [
            r["command"],
            f"{r['max_rss_mb']:.0f}",
            f"< {r['goal_mb']}",
            "PASS" if r["pass"] else "FAIL",
            f"{r['wall_s']:.1f}",
        ]
        for r in rows
    ]
    return "Peak resident memory (max RSS)\n" + table(["command", "MB", "goal MB", "", "wall s"], body)


def render(results, target, goal):
    """The whole plain-text report; target: the accuracy timed, goal: the largest ours / baseline ratio."""
    mode = "QUICK (smoke test: tiny sizes and repeats; not for figures)" if results["quick"] else "full"
    parts = [
        f"mlpnn-jax benchmarks, mode {mode}",
        render_environment(results["environment"]),
        render_epochs(results),
        *render_trainings(results["train_vs_baseline"], target, goal),
        render_memory(results["memory"]),
        f"benchmark runtime {duration(results['runtime_s'])}",
    ]
    return "\n\n".join(parts)
