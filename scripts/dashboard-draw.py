#!/usr/bin/env python3
"""Draws a Grafana dashboard's panels from Prometheus query_range results,
laid out on the dashboard's 24-column grid (scripts/dashboard-picture.py
collects the data). Usage: dashboard-draw.py data.json out.png"""

import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#ff9830", "#96d98d"]
UNITS = {"s": "s", "ops": "/s", "reqps": " req/s", "short": ""}


def legend(fmt, metric):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt) or json.dumps(metric)


def human(v, unit):
    if unit == "s":
        for scale, suffix in [(1, "s"), (1e-3, "ms"), (1e-6, "µs")]:
            if abs(v) >= scale or scale == 1e-6:
                return f"{v / scale:.3g} {suffix}"
    return f"{v:.3g}{UNITS.get(unit, '')}"


def main():
    src, out = sys.argv[1], sys.argv[2]
    d = json.load(open(src))
    dash, data, start = d["dashboard"], d["data"], d["start"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    cell_w, cell_h = 0.75, 0.42  # inches per grid column / row
    fig = plt.figure(figsize=(24 * cell_w, rows * cell_h + 0.8), facecolor=BG)
    H = rows * cell_h + 0.8
    fig.text(0.01, 1 - 0.35 / H, dash["title"], color=TEXT, fontsize=16, weight="bold", va="center")
    firing = sorted({a["labels"]["alertname"] for a in d.get("alerts", []) if a.get("state") == "firing"})
    fig.text(0.99, 1 - 0.35 / H, "alerts firing: " + (", ".join(firing) if firing else "none"), color=TEXT, fontsize=10, ha="right", va="center")

    def box(g):
        x0, y0 = g["x"] / 24, 1 - (0.8 + (g["y"] + g["h"]) * cell_h) / H
        return [x0 + 0.004, y0 + 0.004, g["w"] / 24 - 0.008, g["h"] * cell_h / H - 0.008]

    for p in dash["panels"]:
        g = p["gridPos"]
        if p["type"] == "row":
            fig.text(box(g)[0], box(g)[1] + box(g)[3] / 2, p["title"], color=TEXT, fontsize=12, weight="bold", va="center")
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        frame = fig.add_axes(box(g), facecolor=PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for s in frame.spines.values():
            s.set_color(GRID)
        frame.set_title(p["title"], color=TEXT, fontsize=9, loc="left")
        if p["type"] == "stat":
            ax = frame
        else:
            # The plot inside the panel, with room on the left for the tick labels.
            x, y, w, h = box(g)
            ax = fig.add_axes([x + 0.032, y + 0.022 * 8 / g["h"], w - 0.036, h - 0.03 * 8 / g["h"]], facecolor=PANEL)
            for s in ax.spines.values():
                s.set_color(GRID)
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos, unit=unit: human(v, unit) if v else "0"))
        series = []
        for t in p["targets"]:
            for r in data.get(t["expr"], []):
                pts = [(float(ts) - start, float(v)) for ts, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if pts:
                    series.append((legend(t.get("legendFormat", ""), r["metric"]), pts))
        if p["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            text = "  ".join(f"{human(pts[-1][1], unit)}" for _, pts in series[:3]) if series else "No data"
            sub = ", ".join(n for n, _ in series[:3])
            ax.text(0.5, 0.55, text, color=COLORS[0] if series else TEXT, fontsize=22, ha="center", va="center", transform=ax.transAxes)
            ax.text(0.5, 0.15, sub, color=TEXT, fontsize=7, ha="center", transform=ax.transAxes)
            continue
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        if not series:
            ax.text(0.5, 0.5, "No data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        series.sort(key=lambda s: -max(v for _, v in s[1]))
        for i, (name, pts) in enumerate(series[:8]):
            ax.plot([t / 60 for t, _ in pts], [v for _, v in pts], color=COLORS[i % len(COLORS)], linewidth=1.2, label=f"{name} (max {human(max(v for _, v in pts), unit)})")
        if series:
            ax.legend(fontsize=6, loc="upper left", facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, ncol=2 if len(series) > 4 else 1)
        ax.set_xlabel("minutes", color=TEXT, fontsize=7)
    fig.savefig(out, dpi=80, facecolor=BG)


if __name__ == "__main__":
    main()
