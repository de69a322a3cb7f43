"""`loadtest --report FILE.html|.png`: latency over time and the latency distribution, plotted.

Two plots, one figure, drawn with matplotlib (headless, the Agg backend):

- latency over time: for each Host Factory call, the p50 and p99 of the
  calls that ended in each time slice (about 120 slices over the run), so a
  stall, a warm-up or a slow drift shows where it happened;
- the latency distribution: each call's latency against its percentile, on
  the HDR histogram's own scale (0%, 90%, 99%, 99.9%, ... equally spaced),
  so the tail is as readable as the median.

A `.png` is the figure. A `.html` is one self-contained page: the run's
figures as tables, and the plots inline as SVG, so it can be mailed or
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


def write_report(path: pathlib.Path, report: HostFactoryReport, recorder: Recorder) -> None:
    figure = _figure(report, recorder)
    if path.suffix.lower() == ".png":
        figure.savefig(path, dpi=110)
        return
    svg = io.StringIO()
    figure.savefig(svg, format="svg")
    path.write_text(_page(report, svg.getvalue()))


def _figure(report: HostFactoryReport, recorder: Recorder) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (over_time, distribution) = pyplot.subplots(2, 1, figsize=(10, 9))
    title = f"hostsmith loadtest: {report.clients} clients, {report.mode} loop"
    if report.rate:
        title += f" at {report.rate:g} cycles/s"
    figure.suptitle(f"{title}, target {report.target}")
    _plot_over_time(over_time, recorder)
    _plot_distribution(distribution, recorder)
    figure.tight_layout()
    return figure


def _plot_over_time(axes: Any, recorder: Recorder) -> None:
    span = max((ended for ended, _, _ in recorder.timeline), default=1.0)
    width = max(span / 120, 0.01)
    slices: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ended, command, millis in recorder.timeline:
        slices[command][int(ended / width)].append(millis)
    for command in COMMANDS:
        by_slice = slices.get(command)
        if not by_slice:
            continue
        times = sorted(by_slice)
        p50 = [_quantile(by_slice[t], 0.5) for t in times]
        p99 = [_quantile(by_slice[t], 0.99) for t in times]
        seconds = [(t + 0.5) * width for t in times]
        color = _COLOURS[command]
        axes.plot(seconds, p99, color=color, label=f"{command} p99")
        axes.plot(seconds, p50, linestyle=":", color=color, label=f"{command} p50")
    axes.set_title("latency over time")
    axes.set_xlabel("seconds into the run")
    axes.set_ylabel("ms")
    axes.set_yscale("log")
    axes.legend(fontsize="x-small", ncol=2)
    axes.grid(True, which="both", alpha=0.3)


def _plot_distribution(axes: Any, recorder: Recorder) -> None:
    curves = recorder.histograms | {_CYCLE: recorder.cycle_histogram}
    for name, histogram in curves.items():
        if not histogram.get_total_count():
            continue
        values = histogram.get_percentile_to_value_dict(_PERCENTILES)
        xs = [1 / (1 - p / 100) for p in _PERCENTILES]
        style = "--" if name == _CYCLE else "-"
        axes.plot(
            xs, [values[p] / 1000 for p in _PERCENTILES], style, color=_COLOURS[name], label=name
        )
    ticks = [1, 10, 100, 1000, 10_000, 100_000]
    axes.set_xscale("log")
    axes.set_xticks(ticks, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    axes.set_title("latency distribution (HDR histograms)")
    axes.set_xlabel("percentile")
    axes.set_ylabel("ms")
    axes.set_yscale("log")
    axes.legend(fontsize="x-small")
    axes.grid(True, which="both", alpha=0.3)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _page(report: HostFactoryReport, svg: str) -> str:
    fields = msgspec.structs.asdict(report)
    calls = fields.pop("calls")
    cycle = fields.pop("cycle")
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
</style></head><body>
<h1>hostsmith loadtest: Host Factory cycles</h1>
<table>{summary}</table>
<table><tr><th>call</th><th>calls</th><th>errors</th><th>p50 ms</th><th>p90 ms</th>
<th>p99 ms</th><th>max ms</th></tr>{per_call}</table>
{svg}
</body></html>
"""
