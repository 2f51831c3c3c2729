"""Figure helpers: what a reader sees is what was measured (markers only at measured points, no
invented transitions; zero-hit estimates labelled as upper limits; legends placed off the axes)."""
import numpy as np
import pytest

from dynclip import plotting


@pytest.fixture
def ax():
    plt = plotting.plt()
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_guide_draws_markers_only_at_measured_points_and_a_thin_dotted_line(ax):
    x, y = np.array([1.0, 2.0, 4.0]), np.array([3.0, 1.0, 2.0])
    plotting.guide(ax, x, y, "o", color="C1", label="measured")
    line, marks = ax.lines
    assert line.get_linestyle() not in ("-", "None") and line.get_marker() in ("None", "", None)   # dotted, thin
    assert line.get_linewidth() < 1
    assert marks.get_linestyle() == "None" and marks.get_marker() == "o"
    np.testing.assert_array_equal(marks.get_xdata(), x)
    assert [h.get_label() for h in ax.get_legend_handles_labels()[0]] == ["measured"]


def test_prob_with_ci_labels_zero_hits_as_an_upper_limit(ax):
    plotting.prob_with_ci(ax, [1.0, 2.0, 3.0], np.array([5, 1, 0]), 100, label="run")
    labels = sorted(ax.get_legend_handles_labels()[1], key=len)
    assert labels[0] == "run"
    assert "none of 100 reached it" in labels[1] and "P < 0.036" in labels[1]      # 1 - 0.025**(1/100)
    (zero,) = [ln for ln in ax.lines if ln.get_marker() == "v"]
    assert zero.get_markerfacecolor() == "none" and list(zero.get_xdata()) == [3.0]   # open marker, k = 0 only


def test_unresolved_band_spans_up_to_the_level(ax):
    plotting.unresolved_band(ax, 0.0185, 200)
    (patch,) = ax.patches
    ys = patch.get_transform().transform(patch.get_path().vertices)[:, 1]
    top = ax.transData.transform((0, 0.0185))[1]
    assert np.isclose(ys.max(), top)
    assert "200 runs" in patch.get_label() and "0.018" in patch.get_label()


def test_legend_outside_is_placed_outside_the_axes(ax):
    ax.plot([0, 1], [0, 1], label="a")
    leg = plotting.legend_outside(ax, "below")
    assert leg.get_bbox_to_anchor().y0 < ax.get_window_extent().y0
    with pytest.raises(ValueError, match="loc must be 'right' or 'below'"):
        plotting.legend_outside(ax, "inside")


def test_setup_names_nets_and_data_in_plain_words():
    assert plotting.setup("A", "heavy").startswith("tanh net 2-8-1 (33 weights), 64 points")
    assert "heavy-tailed" in plotting.setup("A", "heavy")
    assert all(not any(k in v for k in ("MLP-", "D64", "D256")) for v in {**plotting.NETS, **plotting.DATA}.values())
