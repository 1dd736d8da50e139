"""Draws the peer benchmark's bar chart: records/s, CPU seconds per million records and
peak RSS for each workload and engine, from the CSV peers.rs writes.

    python plot_peers.py peers.csv peers.png
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

MEASURES = [
    ("records_per_sec", "records/s, steady (higher is better)"),
    ("cpu_secs_per_million", "CPU s per 1M records (lower is better)"),
    ("peak_rss_mib", "peak RSS MiB (lower is better)"),
]
COLORS = {"ours": "#d9480f", "kafka-streams": "#1c7ed6", "quix": "#37b24d"}


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    value = {(r["workload"], r["engine"], m): float(r[m]) for r in rows for m, _ in MEASURES}
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(6 * len(MEASURES), 5))
    width = 0.8 / max(len(engines), 1)
    for ax, (measure, title) in zip(axes, MEASURES):
        for i, engine in enumerate(engines):
            xs = [w + (i - (len(engines) - 1) / 2) * width for w in range(len(workloads))]
            ys = [value.get((w, engine, measure), 0.0) for w in workloads]
            bars = ax.bar(xs, ys, width, label=engine, color=COLORS.get(engine))
            ax.bar_label(bars, labels=[f"{y:,.0f}" if y >= 10 else f"{y:.2f}" for y in ys],
                         fontsize=7, rotation=90, padding=2)
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=15, fontsize=8)
        ax.margins(y=0.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=len(engines))
    fig.suptitle(
        "kafka-streams (ours) vs Kafka Streams vs Quix Streams, same broker and input (log scale)",
        x=0.01,
        ha="left",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
