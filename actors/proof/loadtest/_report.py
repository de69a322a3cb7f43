"""`loadtest --report FILE.html|.png`: what the run offered, achieved and suffered, plotted.

Four plots, one figure, drawn with matplotlib (headless, the Agg backend),
each answering one question an operator asks of a load test:

- throughput over time: cycles offered and completed, calls answered, and failed
  calls per second, so a run that kept up, fell behind or failed shows it at
  a glance (a run with many failures never looks healthy);
- p50 over time and p99 over time, per Host Factory call, in separate
  panels so that neither hides the other: a stall, a warm-up or a drift
  shows where it happened;
- the latency distribution: each call's latency against its percentile on
  the HDR histogram's scale (0%, 90%, 99%, ...), drawn only as far as the
  samples reach: 60 calls say nothing of the 99.9th percentile.

Under the plots, the failed calls grouped by reason, with counts. A `.png`
is the figure. A `.html` is one self-contained page: the run's figures and
its errors as tables, and the plots inline as SVG, so it can be mailed or
committed with nothing beside it. matplotlib is the `report` extra; it is
imported only when a report is asked for.
"""

from __future__ import annotations

import html
import io
import math
import pathlib
from collections import defaultdict
from typing import Any

import msgspec

from hostsmith.actors.hostfactory import COMMANDS
from hostsmith.actors.proof.loadtest._burst import BurstReport
from hostsmith.actors.proof.loadtest._hostfactory import HostFactoryReport, Recorder

FORMATS = (".html", ".png")
_CYCLE = "whole cycle"
_COLOURS = {name: f"C{n}" for n, name in enumerate((*COMMANDS, _CYCLE))}
_PERCENTILES = [100 * (1 - 10 ** (-k / 10)) for k in range(0, 51)]  # 0% .. 99.999%


class ReportError(Exception):
    pass


def check_report_path(path: pathlib.Path) -> None:
    """Refuse a report path before the run, not after it."""
    if path.suffix.lower() not in FORMATS:
        raise ReportError(f"--report {path}: the file must end in .html or .png")
    if not path.parent.is_dir():
        raise ReportError(f"--report {path}: the folder {path.parent} does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("--report needs matplotlib: pip install 'hostsmith[report]'") from None


def write_report(path: pathlib.Path, report: Reported, recorder: Recorder) -> None:
    figure = _figure(report, recorder)
    if path.suffix.lower() == ".png":
        figure.savefig(path, dpi=110)
        return
    svg = io.StringIO()
    figure.savefig(svg, format="svg")
    path.write_text(_page(report, svg.getvalue()))


def _figure(report: Reported, recorder: Recorder) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    reasons = report.error_reasons[:_REASONS_SHOWN]
    figure = pyplot.figure(figsize=(11, 13 + 0.25 * len(reasons)))
    grid = figure.add_gridspec(5, 1, height_ratios=[1, 1, 1, 1.1, 0.25 + 0.12 * len(reasons)])
    throughput, p50, p99, distribution = (figure.add_subplot(grid[n]) for n in range(4))
    figure.suptitle(f"{_title(report)}\n{_error_summary(report)}")
    width = _slice_width(recorder)
    _plot_throughput(throughput, recorder, max(width, 1.0))  # counts need wider slices
    _plot_latency_over_time(p50, recorder, width, 0.5, "p50 latency over time")
    _plot_latency_over_time(p99, recorder, width, 0.99, "p99 latency over time")
    _plot_distribution(distribution, recorder)
    errors = figure.add_subplot(grid[4])
    errors.axis("off")
    errors.text(0, 1, _error_lines(report), va="top", family="monospace", fontsize="small")
    figure.tight_layout()
    return figure


_REASONS_SHOWN = 8

Reported = HostFactoryReport | BurstReport
"""The runs a report can be drawn for: both time every call into a `Recorder`."""


def _title(report: Reported) -> str:
    if isinstance(report, BurstReport):
        return (
            f"hostsmith loadtest: a burst to {report.hosts:,} hosts over {report.templates} "
            f"templates, Host Factory polling every {report.poll_interval_s:g} s"
        )
    title = f"hostsmith loadtest: {report.clients} clients, {report.mode} loop"
    if report.rate:
        title += f" at {report.rate:g} cycles/s"
    return f"{title}, target {report.target}"


def _error_summary(report: Reported) -> str:
    calls = sum(figures.calls for figures in report.calls.values())
    failed = sum(report.errors.values())
    if not failed:
        return f"{calls:,} calls, no errors"
    worst = [
        f"{name}: {f.errors:,} of {f.calls:,} ({_percent(f.errors, f.calls)})"
        for name, f in report.calls.items()
        if f.errors
    ]
    return f"{failed:,} of {calls:,} calls failed ({_percent(failed, calls)}); " + "; ".join(worst)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / max(whole, 1):.0f}%"


def _error_lines(report: Reported) -> str:
    if not report.error_reasons:
        return "errors by reason: none"
    lines = ["errors by reason:"]
    for group in report.error_reasons[:_REASONS_SHOWN]:
        reason = group.reason if len(group.reason) <= 110 else group.reason[:107] + "..."
        lines.append(f"{group.count:>8,}  {group.kind}  {reason}")
    if len(report.error_reasons) > _REASONS_SHOWN:
        lines.append(f"   ... and {len(report.error_reasons) - _REASONS_SHOWN} reasons more")
    return "\n".join(lines)


def _slice_width(recorder: Recorder) -> float:
    span = max((ended for ended, *_ in recorder.timeline), default=1.0)
    return max(span / 120, 0.01)


def _per_second(times: list[float], width: float) -> tuple[list[float], list[float]]:
    """Events per second in each slice of `width` seconds, empty slices included."""
    if not times:
        return [], []
    counts: dict[int, int] = defaultdict(int)
    for at in times:
        counts[int(at / width)] += 1
    slices = range(max(counts) + 1)
    return [(n + 0.5) * width for n in slices], [counts.get(n, 0) / width for n in slices]


def _plot_throughput(axes: Any, recorder: Recorder, width: float) -> None:
    failures = [ended for ended, _, _, succeeded in recorder.timeline if not succeeded]
    answered = [ended for ended, _, _, succeeded in recorder.timeline if succeeded]
    for times, label, style in (
        (recorder.offered, "cycles offered", "--"),
        (recorder.completed, "cycles completed", "-"),
        (answered, "calls answered", ":"),
        (failures, "failed calls", "-"),
    ):
        seconds, rates = _per_second(times, width)
        if seconds:
            colour = "C3" if label == "failed calls" else None
            axes.plot(seconds, rates, style, color=colour, label=f"{label} /s")
    axes.set_title("throughput over time")
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("per second")
    axes.legend(fontsize="x-small")
    axes.grid(True, alpha=0.3)


def _plot_latency_over_time(
    axes: Any, recorder: Recorder, width: float, quantile: float, title: str
) -> None:
    slices: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ended, command, millis, _ in recorder.timeline:
        slices[command][int(ended / width)].append(millis)
    for command in COMMANDS:
        by_slice = slices.get(command)
        if not by_slice:
            continue
        times = sorted(by_slice)
        values = [_quantile(by_slice[t], quantile) for t in times]
        seconds = [(t + 0.5) * width for t in times]
        axes.plot(seconds, values, color=_COLOURS[command], label=command, marker=".", markersize=3)
    axes.set_title(title)
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("ms")
    axes.set_yscale("log")
    axes.legend(fontsize="x-small", ncol=2)
    axes.grid(True, which="both", alpha=0.3)


def _plot_distribution(axes: Any, recorder: Recorder) -> None:
    curves = recorder.histograms | {_CYCLE: recorder.cycle_histogram}
    reach = 1
    for name, histogram in curves.items():
        count = histogram.get_total_count()
        if not count:
            continue
        # a percentile p needs about 1 / (1 - p) samples to be seen at all
        shown = [p for p in _PERCENTILES if 1 / (1 - p / 100) <= count]
        values = histogram.get_percentile_to_value_dict(shown)
        xs = [1 / (1 - p / 100) for p in shown]
        reach = max(reach, round(xs[-1]))
        style = "--" if name == _CYCLE else "-"
        axes.plot(xs, [values[p] / 1000 for p in shown], style, color=_COLOURS[name], label=name)
    names = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
    ticks = [10**k for k in range(len(names)) if 10**k <= max(reach, 10)]
    axes.set_xscale("log")
    axes.set_xticks(ticks, names[: len(ticks)])
    axes.set_title("latency distribution (HDR histograms), as far as the samples reach")
    axes.set_xlabel("percentile")
    axes.set_ylabel("ms")
    axes.set_yscale("log")
    axes.legend(fontsize="x-small")
    axes.grid(True, which="both", alpha=0.3)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _page(report: Reported, svg: str) -> str:
    fields = msgspec.structs.asdict(report)
    calls = fields.pop("calls")
    cycle = fields.pop("cycle", None)
    reasons = fields.pop("error_reasons")
    errors = "".join(
        f"<tr><td>{group.count:,}</td><th>{html.escape(group.kind)}</th>"
        f"<td>{html.escape(', '.join(group.commands))}</td>"
        f"<td class=text>{html.escape(group.example)}</td></tr>"
        for group in reasons
    )
    summary = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in fields.items()
    )
    rows = dict(calls) | ({_CYCLE: cycle} if cycle is not None else {})
    per_call = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{value:,}</td>" for value in msgspec.structs.astuple(figures))
        + "</tr>"
        for name, figures in rows.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>hostsmith loadtest report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
th {{ text-align: left; background: #f4f4f4; }}
td.text {{ text-align: left; }}
</style></head><body>
<h1>{html.escape(_title(report))}</h1>
<table>{summary}</table>
<table><tr><th>call</th><th>calls</th><th>errors</th><th>p50 ms</th><th>p90 ms</th>
<th>p99 ms</th><th>max ms</th></tr>{per_call}</table>
<h2>Errors by reason: {html.escape(_error_summary(report))}</h2>
<table><tr><th>count</th><th>kind</th><th>calls</th><th>an example</th></tr>{errors}</table>
{svg}
</body></html>
"""
