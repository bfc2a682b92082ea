"""What each figure holds (panels, lines, labels, limits, legend entries), on small frames built
here: 2 models × 3 lrs × 3 seeds × 4 epochs (one lr with a diverged seed, one with a seed stuck at
chance so that its CI band leaves the axis), and 2 grammars × 2 lrs × 2 seeds with sampling
accuracies at 3 temperatures."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from rnnbench.results.plots import curves_figure, lr_figure, pair_figure, temperature_figure

LRS = (0.01, 0.1, 1.0)


@pytest.fixture
def imdb() -> pd.DataFrame:
    rows = []
    for model, lr, seed in itertools.product(("elman", "lstm"), LRS, range(3)):
        diverged = (model, lr, seed) == ("elman", 1.0, 2)
        stuck = (model, lr, seed) == ("lstm", 0.01, 0)
        for epoch in range(1, 5):
            acc = 0.5 if stuck else 0.6 + 0.05 * epoch + 0.05 * LRS.index(lr) + 0.01 * seed
            rows.append(
                {
                    "trial": f"{model}_lr{lr}_seed{seed}",
                    "status": "diverged" if diverged else "finished",
                    "model": model,
                    "lr": lr,
                    "seed": seed,
                    "epoch": epoch,
                    "val_acc": acc,
                    "train_loss": 1.0 / epoch + lr + 0.01 * seed,
                }
            )
            if diverged and epoch == 2:
                rows[-1].update(val_acc=np.nan, train_loss=np.nan)
                break
    df = pd.DataFrame(rows)
    df.attrs["task"] = "imdb"
    return df


@pytest.fixture
def grammar() -> pd.DataFrame:
    rows = []
    for dataset, lr, seed in itertools.product(("brackets", "ndfa"), (0.3, 1.0), range(2)):
        row = {
            "trial": f"{dataset}_lr{lr}_seed{seed}",
            "status": "finished",
            "dataset": dataset,
            "lr": lr,
            "seed": seed,
            "epoch": 1,
            "loss_per_token": 1.0,
        }
        for t in (0.0, 0.5, 1.0):
            row[f"synth_acc@t{t:g}"] = 0.5 + 0.2 * lr * (1 - t) + 0.02 * seed
            row[f"compl_acc@t{t:g}"] = 0.9 - 0.1 * t + 0.01 * seed
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["task"] = "grammar"
    return df


def _gids(ax, gid: str) -> list:
    return [a for a in ax.get_children() if getattr(a, "get_gid", lambda: None)() == gid]


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_curves_show_the_whole_lr_grid_as_one_panel_per_model(imdb):
    fig = curves_figure(imdb, "val_acc")
    assert [ax.get_title() for ax in fig.axes] == ["elman: 3 seeds per lr, 1 diverged", "lstm: 3 seeds per lr"]
    for ax in fig.axes:
        assert len(_gids(ax, "mean")) == len(LRS) and not _gids(ax, "seed")
        assert ax.get_xlabel() == "epoch"
        low, high = ax.get_ylim()
        assert 0 <= low < high <= 1
    assert fig.axes[0].get_ylabel() == "val_acc (fraction correct)"
    assert _legend_texts(fig) == ["0.01", "0.1", "1", "▲▼ CI band runs past the axis"]
    assert fig.legends[0].get_title().get_text() == "lr"
    colors = {tuple(line.get_color()) for line in _gids(fig.axes[0], "mean")}
    assert len(colors) == len(LRS)  # one distinct colour per lr
    plt.close(fig)


def test_a_band_past_the_axis_is_marked_on_its_edge(imdb):
    fig = curves_figure(imdb, "val_acc")
    lstm = fig.axes[1]
    marks = _gids(lstm, "clipped")  # lstm lr 0.01: one seed stuck at 0.5 widens the band past the axis
    assert marks and all(not mark.get_clip_on() for mark in marks)
    low, high = lstm.get_ylim()
    assert {y for mark in marks for y in mark.get_ydata()} <= {low, high}
    plt.close(fig)


def test_seeds_on_request_are_thin_lines_of_their_lr(imdb):
    fig = curves_figure(imdb, "val_acc", seeds=True)
    elman, lstm = fig.axes
    assert len(_gids(elman, "seed")) == 8  # 9 seeds, the diverged one left out, as in the mean
    assert len(_gids(lstm, "seed")) == 9
    assert all(line.get_linewidth() < _gids(lstm, "mean")[0].get_linewidth() for line in _gids(lstm, "seed"))
    assert "thin lines = seeds" in fig.texts[0].get_text()  # the suptitle says so
    plt.close(fig)


def test_training_loss_sits_next_to_the_metric_for_each_models_best_setting(imdb):
    fig = pair_figure(imdb, "val_acc", "train_loss")
    assert [ax.get_title() for ax in fig.axes] == ["train_loss", "val_acc"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["train_loss (nats)", "val_acc (fraction correct)"]
    assert all(len(_gids(ax, "mean")) == 2 for ax in fig.axes)
    assert _legend_texts(fig)[:2] == ["elman (lr 0.1, n=3)", "lstm (lr 1, n=3)"]  # elman lr 1 lost a seed
    assert fig.axes[0].get_ylim()[0] >= 0  # a loss axis stays >= 0
    plt.close(fig)


def test_lr_grid_offsets_the_models_so_error_bars_do_not_overlap(imdb):
    fig = lr_figure(imdb, "val_acc")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1", "1"]
    lines = _gids(ax, "mean")
    assert len(lines) == 2
    xs = [np.asarray(line.get_xdata(), float) for line in lines]
    assert (xs[0] < xs[1]).all() and np.allclose(xs[1] / xs[0], 10**0.025)
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["elman (n=2-3)", "lstm (n=3)"]
    assert "peak epoch" in ax.get_title()
    plt.close(fig)


def test_temperature_panels_per_grammar_with_no_overlapping_text(grammar):
    fig = temperature_figure(grammar)
    assert [ax.get_title() for ax in fig.axes] == [
        "brackets: valid samples from .start",
        "ndfa: valid samples from .start",
        "brackets: valid completions of held-out halves",
        "ndfa: valid completions of held-out halves",
    ]
    assert all(len(_gids(ax, "mean")) == 2 for ax in fig.axes)  # one line per lr
    assert all(ax.get_ylim() == (-0.02, 1.02) and not ax.texts for ax in fig.axes)
    x03, x1 = (np.asarray(line.get_xdata(), float) for line in _gids(fig.axes[0], "mean"))
    assert (x03 < x1).all()  # the lrs are shifted apart at each temperature
    assert _legend_texts(fig) == ["0.3", "1"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [
        *fig.texts,
        *[legend.get_title() for legend in fig.legends],
        *[t for legend in fig.legends for t in legend.get_texts()],
        *[t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)],
    ]
    texts = [t for t in labels if t.get_visible() and t.get_text().strip()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlapping = [
        (a.get_text(), b.get_text()) for (a, ba), (b, bb) in itertools.combinations(zip(texts, boxes), 2) if ba.overlaps(bb)
    ]
    assert not overlapping
    plt.close(fig)


def test_imdb_accuracy_plots_draw_the_chance_line(imdb):
    chance = imdb.assign(chance_acc=0.5 + 0.001 * imdb["epoch"])
    for fig, ax in ((curves_figure(chance, "val_acc"), 0), (pair_figure(chance, "val_acc", "train_loss"), 1)):
        (line,) = _gids(fig.axes[ax], "chance")
        assert line.get_linestyle() == "--" and list(line.get_ydata()) == pytest.approx([0.501, 0.502, 0.503, 0.504])
        assert "chance (majority class)" in _legend_texts(fig)
        plt.close(fig)
    fig = lr_figure(chance, "val_acc")
    assert _gids(fig.axes[0], "chance") and "chance (majority class)" in [
        t.get_text() for t in fig.axes[0].get_legend().get_texts()
    ]
    plt.close(fig)
    fig = curves_figure(imdb, "val_acc")  # no chance_acc column: no line
    assert not _gids(fig.axes[0], "chance")
    plt.close(fig)


def test_performance_profile_has_one_line_per_models_best_lr_with_a_band(imdb):
    from rnnbench.results import profile_figure

    fig = profile_figure(imdb, "val_acc")
    (ax,) = fig.axes
    lines = _gids(ax, "profile")
    assert [line.get_label() for line in lines] == ["lstm (lr 1), n = 3 runs", "elman (lr 0.1), n = 3 runs"]
    for line in lines:
        y = np.asarray(line.get_ydata())
        assert (np.diff(y) <= 0).all() and y[0] <= 1 and y[-1] == 0  # a share of runs, falling with τ
    assert len(ax.collections) == 2 and "stratified bootstrap" in ax.get_title()
    plt.close(fig)


def test_probability_of_improvement_figure_marks_pairs_too_small_for_an_interval(imdb, grammar):
    from rnnbench.results import improvement_figure

    fig = improvement_figure(imdb, "val_acc")  # 3 seeds a side: a point, no interval
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lstm (lr 1) vs elman (lr 0.1)"]
    assert len(_gids(ax, "probability")) == 1 and not _gids(ax, "interval")
    assert [t.get_text() for t in ax.texts] == ["interval not reliable (n = 3 < 4)"]
    plt.close(fig)
    four = pd.concat(
        [imdb, imdb[imdb.seed == 0].assign(seed=3, trial=lambda d: d["trial"] + "x", val_acc=lambda d: d["val_acc"] + 0.005)]
    )
    fig = improvement_figure(four, "val_acc")
    (interval,) = _gids(fig.axes[0], "interval")
    low, high = interval.get_xdata()
    (point,) = _gids(fig.axes[0], "probability")
    assert 0 <= low < point.get_xdata()[0] <= high <= 1 and not fig.axes[0].texts
    plt.close(fig)
