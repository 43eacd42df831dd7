"""The inline SVG chart: one point per batch inside the window, labelled with its max."""

from __future__ import annotations

from kafkalake.ui.charts import line_chart


def test_points_outside_the_window_are_left_out_and_the_max_is_labelled() -> None:
    svg = line_chart([(50.0, 9.0), (100.0, 1.0), (150.0, 4.0), (200.0, 2.0)], start=100.0, end=200.0, label="lag")
    assert svg.startswith("<svg") and 'data-points="3"' in svg
    assert "lag: max 4, last 2" in svg
    assert svg.count("<polyline") == 1


def test_no_batches_draws_no_line() -> None:
    svg = line_chart([], start=0.0, end=10.0, label="rows/s")
    assert 'data-points="0"' in svg and "<polyline" not in svg and "no batches" in svg
