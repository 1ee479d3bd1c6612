"""The charts of `augshard report`: matplotlib figures of a run's combos and its evaluation, as inline base64 PNGs."""

from __future__ import annotations

import base64
import io
from textwrap import fill
from typing import Any

from augshard.evaluation.document import CONFIRM, Row, Section
from augshard.evaluation.gains import HELPS, HURTS, TARGET_GAIN, UNCLEAR
from augshard.report.model import ComboReport

K_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def chart_rows(combos: list[ComboReport]) -> str:
    import matplotlib.pyplot as plt

    ok = [c for c in combos if c.ok]
    ok.sort(key=lambda c: (c.k, c.name), reverse=True)
    height = max(2.5, 0.32 * len(ok) + 1.2)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    names = [c.name for c in ok]
    colours = [K_COLOURS[(c.k - 1) % len(K_COLOURS)] for c in ok]
    ax1.barh(names, [c.rows for c in ok], color=colours)
    for i, c in enumerate(ok):
        ax1.text(c.rows, i, f" {c.rows:,}", va="center", fontsize=8)
    ax1.set_xlabel("rows (accepted variants)")
    ax1.set_title("Rows per combo")
    acc = [(c.acceptance or 0) * 100 for c in ok]
    ax2.barh(names, acc, color=colours, alpha=0.8)
    for i, a in enumerate(acc):
        ax2.text(a, i, f" {a:.0f}%", va="center", fontsize=8)
    ax2.set_xlim(0, 110)
    ax2.set_xlabel("accepted / candidates (%)")
    ax2.set_title("Acceptance rate")
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=8)
    ks = sorted({c.k for c in ok})
    handles = [plt.Rectangle((0, 0), 1, 1, color=K_COLOURS[(k - 1) % len(K_COLOURS)]) for k in ks]
    fig.legend(handles, [f"k={k}" for k in ks], loc="lower center", bbox_to_anchor=(0.5, -0.04), ncol=len(ks),
               fontsize=8, frameon=False)  # fmt: skip
    return _png(fig)


def chart_similarity(combos: list[ComboReport], lo: float | None, hi: float | None) -> str | None:
    """Similarity of accepted variants per method: the single-method combos (all combos when there are none)."""
    import matplotlib.pyplot as plt

    ok = [c for c in combos if c.ok and c.similarities]
    chosen = [c for c in ok if c.k == 1] or ok
    if not chosen:
        return None
    chosen.sort(key=lambda c: c.name)
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.45 * len(chosen) + 1.2)))
    parts = ax.violinplot([c.similarities for c in chosen], orientation="horizontal", showmedians=True, widths=0.8)
    for body in parts["bodies"]:
        body.set_facecolor(K_COLOURS[0])
        body.set_alpha(0.45)
    ax.set_yticks(range(1, len(chosen) + 1), [f"{c.name} (n={len(c.similarities)})" for c in chosen], fontsize=8)
    for bound in (lo, hi):
        if bound is not None:
            ax.axvline(bound, color="#C44E52", linestyle="--", linewidth=1)
    ax.set_xlabel("similarity to the original evidence (accepted variants; dashed: the accepted range)")
    ax.set_title("Similarity distribution per method" + (" (single-method combos)" if chosen[0].k == 1 else ""))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def chart_shards(combos: list[ComboReport], shard_times: dict[int, float], order: dict[str, float]) -> str | None:
    """Each shard's combos as stacked segments of their duration, and the shard's wall time from its events."""
    fig = shards_figure(combos, shard_times, order)
    return None if fig is None else _png(fig)


def shards_figure(combos: list[ComboReport], shard_times: dict[int, float], order: dict[str, float]) -> Any:
    """The figure of `chart_shards` (a matplotlib Figure, or None when no combo ran)."""
    import matplotlib.pyplot as plt

    per_shard: dict[int, list[ComboReport]] = {}
    for c in combos:
        if c.ran:
            per_shard.setdefault(c.outcome.shard, []).append(c)
    if not per_shard:
        return None
    shards = sorted(per_shard)
    widest = max(max(sum(c.outcome.duration_s for c in per_shard[s]), shard_times.get(s) or 0.0) for s in shards)
    xmax = (widest or 1.0) * 1.3  # room on the right for each shard's "N combos, Xs"
    fig, ax = plt.subplots(figsize=(11, max(2.2, 0.5 * len(shards) + 1.2)))
    # A label goes inside its segment only where it fits (about 0.06 in per character at 7 pt, the axes about 8.6 in
    # wide); the others get a number, listed under the chart: labels never overlap, however short the segments.
    per_char = xmax * 0.06 / 8.6
    numbered: list[str] = []
    for row, shard in enumerate(shards):
        left = 0.0
        # In the order the shard ran them (from its events), else by name.
        ran = sorted(per_shard[shard], key=lambda c: (order.get(c.outcome.combo_id, float("inf")), c.name))
        for i, c in enumerate(ran):
            d = c.outcome.duration_s
            colour = "#C44E52" if c.failed else K_COLOURS[(c.k - 1) % len(K_COLOURS)]
            ax.barh(row, d, left=left, color=colour, edgecolor="white", alpha=0.9 if i % 2 else 0.7)
            if d > (len(c.name) + 1) * per_char:
                ax.text(left + d / 2, row, c.name, ha="center", va="center", fontsize=7, color="white", clip_on=True)
            elif d > (len(str(len(numbered) + 1)) + 1) * per_char:
                numbered.append(c.name)
                ax.text(left + d / 2, row, str(len(numbered)), ha="center", va="center", fontsize=7, color="white")
            left += d
        wall = shard_times.get(shard)
        if wall:
            ax.plot([wall], [row], marker="|", markersize=18, color="black")
        ax.text(max(left, wall or 0), row, f"  {len(per_shard[shard])} combos, {left:.1f}s", va="center", fontsize=8)
    ax.set_xlim(0, xmax)
    ax.set_yticks(range(len(shards)), [f"shard {s}" for s in shards])
    ax.invert_yaxis()
    xlabel = "seconds (segments: combos; black tick: the shard's wall time from its events)"
    if numbered:  # the numbered segments' names, under the axis
        xlabel += "\n\n" + fill("   ".join(f"{n}:\u00a0{name}" for n, name in enumerate(numbered, 1)), 150)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title("Time per shard")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def chart_label_flips(combos: list[ComboReport]) -> str:
    """The share of each combo's variants whose predicted label differs from their original's."""
    import matplotlib.pyplot as plt

    ranked = sorted(combos, key=lambda c: (c.outcome.label_flip_share or 0.0, c.name))
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.3 * len(ranked) + 1.2)))
    shares = [(c.outcome.label_flip_share or 0.0) * 100 for c in ranked]
    ax.barh([c.name for c in ranked], shares, color=[K_COLOURS[(c.k - 1) % len(K_COLOURS)] for c in ranked])
    for i, share in enumerate(shares):
        ax.text(share, i, f" {share:.1f}%", va="center", fontsize=8)
    ax.set_xlabel("variants predicted another label than their original (%)")
    ax.set_title("Label flips per combo")
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


VERDICT_COLOURS = {HELPS: "#2E7D32", HURTS: "#C44E52", UNCLEAR: "#8C8C8C"}
FOREST_MOST = 60  # rows of a forest plot; past it, the best and the worst half of that
DODGE = 10**0.012  # a learning curve's combos side by side at one size (log axis: a factor), so bars never hide


def rank_by_gain(combos: list[Row]) -> list[Row]:
    """An evaluation section's combos by mean macro-F1 gain, best first."""
    return sorted(combos, key=lambda r: (-r.gain.mean, r.name))


def forest_rows(combos: list[Row], most: int = FOREST_MOST) -> list[Row]:
    """The combos a forest plot shows: all of them, or past `most` the `most // 2` best and the `most // 2` worst."""
    ranked = rank_by_gain(combos)
    return ranked if len(ranked) <= most else ranked[: most // 2] + ranked[-(most // 2) :]


def chart_forest(section: Section, most: int = FOREST_MOST) -> str:
    """Each combo's mean macro-F1 gain over the baseline with its 95% interval, coloured by its verdict."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import offset_copy

    rows = forest_rows(section.combos, most)
    cut = len(rows) < len(section.combos)
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.26 * len(rows) + 1.6)))
    for y, r in enumerate(rows):
        g, colour = r.gain, VERDICT_COLOURS.get(r.verdict, "#444")
        ax.errorbar(g.mean, y, xerr=[[g.mean - g.ci_low], [g.ci_high - g.mean]], fmt="o", markersize=4, capsize=2.5,
                    linewidth=1.2, color=colour)  # fmt: skip
    if cut:  # where the omitted middle of the ranking would be
        ax.axhline(len(rows) / 2 - 0.5, color="#bbb", linestyle=":", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.9)
    ax.set_yticks(range(len(rows)), [f"{r.name} (k={r.k})" for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # best on top
    ax.set_xlabel("macro-F1 gain over the baseline (mean over splits, 95% interval; 0: no change)")
    shown = f"the {most // 2} best and {most // 2} worst of {len(section.combos)} combos" if cut else "every combo"
    stage = "Confirmed gain" if section.stage == CONFIRM else "Gain"
    ax.set_title(f"{stage} per combo: {section.features}, train size {section.train_size:g} ({shown})")
    ax.spines[["top", "right"]].set_visible(False)
    handles = [plt.Line2D([], [], marker="o", linestyle="-", color=c) for c in VERDICT_COLOURS.values()]
    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")  # under the x label, whatever the height
    ax.legend(handles, list(VERDICT_COLOURS), loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below,
              ncol=3, fontsize=8, frameon=False)  # fmt: skip
    return _png(fig)


def chart_class_gains(section: Section, rows: list[Row], classes: list[str], counts: dict[str, int]) -> str | None:
    """The heatmap of `class_gains_figure` as a PNG (None when no row has per-class gains)."""
    fig = class_gains_figure(section, rows, classes, counts)
    return None if fig is None else _png(fig)


def class_gains_figure(section: Section, rows: list[Row], classes: list[str], counts: dict[str, int]) -> Any:
    """Each row's F1 gain per class (columns in the order given: rarest first, with their originals) on a colour
    map centred on 0, the value printed; a cell whose 95% interval excludes 0 is bold with an asterisk. The
    intervals are not adjusted: with classes x combos cells, some exclude 0 by chance."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.per_class]
    if not rows or not classes:
        return None
    cells = [[r.per_class.get(c) for c in classes] for r in rows]
    values = [[float("nan") if g is None else g.mean for g in line] for line in cells]
    # The scale's ends: the largest gain, and never under the target gain, so noise of 0.001 is not painted dark.
    lim = max((abs(g.mean) for line in cells for g in line if g is not None), default=0.0)
    lim = max(lim, TARGET_GAIN)
    fig, ax = plt.subplots(figsize=(min(16.0, 4.0 + 0.95 * len(classes)), 1.6 + 0.4 * len(rows)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#eeeeee")  # bad: a class none of the combo's test folds held
    image = ax.imshow(values, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")  # NaN shows as "bad"
    for y, line in enumerate(cells):
        for x, g in enumerate(line):
            if g is None:
                continue
            sure = g.ci_low > 0 or g.ci_high < 0
            ink = "white" if abs(g.mean) > 0.6 * lim else "black"
            ax.text(x, y, f"{g.mean:+.3f}{'*' if sure else ''}", ha="center", va="center", fontsize=8,
                    fontweight="bold" if sure else "normal", color=ink)  # fmt: skip
    turn = {"rotation": 30, "ha": "right"} if len(classes) > 6 else {}
    ax.set_xticks(range(len(classes)), [f"{c}\n({counts[c]:,})" if c in counts else c for c in classes], fontsize=8,
                  **turn)  # fmt: skip
    ax.set_yticks(range(len(rows)), [r.name for r in rows], fontsize=8)
    ax.set_xlabel("class, rarest first (originals)\nbold*: its 95% interval excludes 0 (intervals not adjusted for "
                  "the classes x combos compared)", fontsize=8)  # fmt: skip
    ax.set_title(f"F1 gain per class: {section.features}, train size {section.train_size:g}")
    fig.colorbar(image, ax=ax, shrink=0.9, label="F1 gain over the baseline")
    return fig


def chart_learning_curve(curve: list[Section], followed: list[str]) -> str | None:
    """The learning curve of `learning_curve_figure` as a PNG (None with fewer than two train sizes)."""
    fig = learning_curve_figure(curve, followed)
    return None if fig is None else _png(fig)


def learning_curve_figure(curve: list[Section], followed: list[str]) -> Any:
    """One features set over its train sizes (`curve`, smallest first) on a log axis: above, the macro-F1 gains of
    the same combos (`followed`) at every size with their 95% intervals, one colour per combo, a dashed zero line;
    below, the baseline's macro-F1 with ± 1 std over the splits."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    if len(curve) < 2:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    colours = plt.get_cmap("tab10")
    for i, combo_id in enumerate(followed):
        points = [(s.train_size, r) for s in curve if (r := s.row(combo_id)) is not None]
        if not points:
            continue
        shift = DODGE ** (i - (len(followed) - 1) / 2)
        gains, name = [r.gain for _, r in points], points[0][1].name
        top.errorbar([x * shift for x, _ in points], [g.mean for g in gains],
                     yerr=[[g.mean - g.ci_low for g in gains], [g.ci_high - g.mean for g in gains]], fmt="-o",
                     markersize=4, capsize=3, linewidth=1.2, color=colours(i % 10), label=name)  # fmt: skip
    top.axhline(0, color="black", linestyle="--", linewidth=0.9)
    top.set_ylabel("macro-F1 gain over the baseline\n(mean, 95% interval)")
    top.set_title(f"Learning curve: {curve[0].features}, the same combos at every train size")
    sizes = [s.train_size for s in curve]
    means = [s.baseline.macro_f1.mean for s in curve]
    stds = [s.baseline.macro_f1.std for s in curve]
    bottom.plot(sizes, means, "-o", color="black", markersize=4, label="baseline")
    bottom.fill_between(sizes, [m - s for m, s in zip(means, stds, strict=True)],
                        [m + s for m, s in zip(means, stds, strict=True)], color="black", alpha=0.12)  # fmt: skip
    bottom.set_ylabel("baseline macro-F1\n(± 1 std over the splits)")
    bottom.set_xscale("log")  # shared with the panel above; before the ticks, which a scale resets
    bottom.set_xticks(sizes, [f"{s.train_size:g}\n({s.baseline.train_originals:,.0f})" for s in curve])
    bottom.xaxis.set_minor_locator(NullLocator())
    bottom.set_xlim(min(sizes) / 1.3, max(sizes) * 1.3)
    bottom.set_xlabel("train size, log scale: fraction of each fold's training originals (mean training originals)")
    for ax in (top, bottom):
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8, frameon=False)
    return fig
