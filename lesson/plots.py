"""The lesson's figures: gate heatmaps, a small LSTM's gates on a sine wave, the confusion matrix.

    python -m lesson.inspect_model gates --artifact artifacts/sentiment --text "..."  # uses these

Each function draws one PNG from the plain data the commands in lesson/inspect_model.py also
write as JSON, so a figure can be redrawn from its JSON without the model. Files only, on
matplotlib's Agg backend: no display is needed (servers, CI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CMAP = "viridis"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: files only, no display needed (servers, CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sentiment_gates(explanation: dict[str, Any], title: str, path: Path) -> None:
    """One heatmap per gate and direction (units x tokens, shared 0..1 colour scale) and, in
    the bottom row, each gate's mean over units per token: the heatmaps show which units
    switch, the curves how the layer as a whole reacts to each token."""
    plt = pyplot()
    tokens = explanation["tokens"]
    pieces = [t["piece"] for t in tokens]
    gates, directions = explanation["gates"], explanation["directions"]
    width = max(5.0, 0.45 * len(tokens) + 2.0)
    fig, axes = plt.subplots(
        len(gates) + 1,
        len(directions),
        figsize=(width * len(directions), 2.4 * (len(gates) + 1) + 0.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    image = None
    for column, direction in enumerate(directions):
        for row, gate in enumerate(gates):
            values = np.array([t[direction][gate] for t in tokens]).T  # [units, tokens]
            ax = axes[row][column]
            image = ax.imshow(
                values, aspect="auto", cmap=CMAP, vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_title(f"{gate} gate, {direction}", fontsize=10)
            ax.set_ylabel("unit")
        # Tokens above the first heatmap too, so the eye need not travel down the column.
        axes[0][column].tick_params(labeltop=True)
        plt.setp(axes[0][column].get_xticklabels(), rotation=45, ha="left", fontsize=8)
        ax = axes[-1][column]
        for gate in gates:
            means = [float(np.mean(t[direction][gate])) for t in tokens]
            ax.plot(range(len(tokens)), means, marker="o", label=gate)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean over units")
        ax.set_title(f"mean gate activation, {direction}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_xticks(range(len(tokens)))
        ax.set_xticklabels(pieces, rotation=45, ha="right", fontsize=9)
    fig.suptitle(title, fontsize=11)
    if image is not None:
        fig.colorbar(image, ax=axes[:-1, :].ravel().tolist(), shrink=0.8, label="activation")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sine_gates(wave: np.ndarray, trace: dict[str, np.ndarray], title: str, path: Path) -> None:
    plt = pyplot()
    panels = ("forget", "input", "output")
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(8, 9), sharex=True)
    steps = np.arange(len(wave))
    axes[0].plot(steps, wave, marker="o", color="black")
    axes[0].set_ylabel("input x(t)")
    axes[0].set_title(title, fontsize=10)
    for ax, gate in zip(axes[1:], panels, strict=True):
        for unit in range(trace[gate].shape[1]):
            ax.plot(steps, trace[gate][:, unit], marker=".", label=f"unit {unit}")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{gate} gate")
        ax.axhline(0.5, color="grey", linewidth=0.5)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[1].legend(ncol=4, fontsize=8, loc="lower left")
    axes[-1].set_xlabel("time step")
    axes[-1].set_xticks(steps)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    matrix = np.array(report["confusion_matrix"])
    labels = report["labels"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        share = count / max(matrix[row].sum(), 1)
        ax.text(
            column,
            row,
            f"{count}\n({share:.0%} of row)",
            ha="center",
            va="center",
            color="white" if count > threshold else "black",
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"dev {report['source']}: accuracy {report['accuracy']:.3f}", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
