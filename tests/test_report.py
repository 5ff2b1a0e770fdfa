"""The report stage on a made-up finished study folder (tests/fake_study.py)."""
from __future__ import annotations

import base64
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib import image as mpimg
from matplotlib.container import ErrorbarContainer

from fake_study import write_fake_study
from taskalign.report import build_report, load_study
from taskalign.report.cells import seed_stats
from taskalign.report.html import render_html
from taskalign.report.plots import plot_alignment_scatter, plot_rpg_bars

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TableReader(HTMLParser):
    """Table id -> body rows as lists of cell texts; data URIs of every <img>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table, self._in_body, self._row, self._cell = None, False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _read(html_path: Path) -> tuple[str, TableReader]:
    text = html_path.read_text(encoding="utf-8")
    reader = TableReader()
    reader.feed(text)
    return text, reader


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory) -> Path:
    study = write_fake_study(tmp_path_factory.mktemp("two_seeds"), seeds=(0, 1))
    build_report(study)
    return study


@pytest.fixture(scope="module")
def one_seed_nan(tmp_path_factory) -> Path:
    study = write_fake_study(tmp_path_factory.mktemp("one_seed"), seeds=(0,), with_nan=True,
                             claim_text="<script>alert('x')</script> & co")
    build_report(study)
    return study


def test_report_embeds_every_plot_as_a_png(two_seeds):
    text, reader = _read(two_seeds / "report.html")
    pngs = sorted((two_seeds / "plots").glob("*.png"))
    assert len(pngs) == 4 + 5  # two scatters, two bar charts, one learning-curve figure per task
    assert len(reader.images) == len(pngs)
    for src in reader.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    pixels = mpimg.imread(io.BytesIO(base64.b64decode(reader.images[0].split(",", 1)[1])), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 0.01  # not a blank canvas
    # self-contained: nothing fetched, nothing run
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", text)


def test_results_table_has_a_row_per_results_row_and_a_mean_per_cell(two_seeds):
    _, reader = _read(two_seeds / "report.html")
    study = load_study(two_seeds)
    rows = reader.tables["results"]
    assert len(rows) == len(study.rows) == 2 * 5 * 2
    assert {(r[0], r[1], r[2]) for r in rows} == {(r["task"], r["encoder"], str(r["seed"])) for r in study.rows}
    assert len(reader.tables["results-mean"]) == 2 * 5
    assert all("±" in r[3] for r in reader.tables["results-mean"])  # value ± 95 % CI with two seeds


def test_correlation_rows_carry_n_and_p_and_interval(two_seeds):
    _, reader = _read(two_seeds / "report.html")
    summary = json.loads((two_seeds / "summary.json").read_text())
    rows = reader.tables["correlations"]
    assert len(rows) == len(summary["correlations"])
    for corr, row in zip(summary["correlations"], rows):
        assert row[:3] == [corr["alignment"], corr["outcome"], str(corr["n"])]
        p = corr["spearman_p"]
        assert row[6] == (format(p, ".3g") if math.isfinite(p) else "n/a")
        cells, measurement = corr["spearman_ci_cells"], corr["spearman_ci"]
        assert row[4] == f"[{cells[0]:.3f}, {cells[1]:.3f}]"        # cells resampled first, then
        assert row[5] == f"[{measurement[0]:.3f}, {measurement[1]:.3f}]"   # seeds and cases only
    within = reader.tables["within-task"]
    assert [r[0] for r in within] == [t["task"] for t in summary["within_task"]["tasks"]]


def test_nan_and_single_seed_read_na_without_error_bars(one_seed_nan):
    _, reader = _read(one_seed_nan / "report.html")
    rows = {(r[0], r[1]): r for r in reader.tables["results"]}
    assert len(rows) == 10
    assert rows[("classification", "profound_conv")][12] == "n/a"   # D2P column
    assert rows[("segmentation", "provicnet")][7] == "n/a"          # RPG column
    assert any(r[9].startswith(">") for r in rows.values())         # a censored convergence epoch
    assert "results-mean" not in reader.tables                     # one seed: nothing to average
    corr = {(r[0], r[1]): r for r in reader.tables["correlations"]}
    assert corr[("cka_pretrained", "convergence_epoch")][6] == "n/a"  # NaN p-value in summary.json


def test_rpg_bars_draw_error_bars_only_with_several_seeds(one_seed_nan, two_seeds, tmp_path):
    single = plot_rpg_bars(load_study(one_seed_nan).rows, tmp_path / "one.png")
    several = plot_rpg_bars(load_study(two_seeds).rows, tmp_path / "two.png")
    assert not [c for c in single.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert [c for c in several.axes[0].containers if isinstance(c, ErrorbarContainer)]
    notes = [t.get_text() for t in single.texts] + [t.get_text() for t in single.axes[0].texts]
    assert any("provicnet/segmentation" in n for n in notes)       # the NaN cell is named
    assert (tmp_path / "one.png").read_bytes().startswith(PNG_SIGNATURE)


def test_scatter_survives_all_nan_alignment(one_seed_nan, tmp_path):
    rows = [dict(r, d2p=math.nan) for r in load_study(one_seed_nan).rows]
    fig = plot_alignment_scatter(rows, "d2p", "rpg", None, tmp_path / "s.png")
    assert "not in summary.json" in fig.axes[0].get_title()
    assert any("not shown" in t.get_text() for t in fig.texts)
    assert (tmp_path / "s.png").read_bytes().startswith(PNG_SIGNATURE)


def test_text_from_the_study_is_escaped(one_seed_nan):
    text = (one_seed_nan / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text


@pytest.mark.parametrize("preset, shown", [("smoke", True), ("quick", True), ("standard", False)])
def test_indicative_presets_carry_a_warning(tmp_path, preset, shown):
    study = load_study(write_fake_study(tmp_path, seeds=(0,), preset=preset))
    text = render_html(study, plots=[])
    assert ("indicative numbers: small models, short training" in text) == shown
    assert f"<code>{preset}</code> preset" in text


def test_missing_results_csv_names_the_file(tmp_path):
    study = write_fake_study(tmp_path, seeds=(0,))
    (study / "results.csv").unlink()
    with pytest.raises(FileNotFoundError, match="results.csv"):
        build_report(study)
    assert not (study / "report.html").exists()


def test_seed_stats_interval():
    assert math.isnan(seed_stats([1.0]).ci95) and seed_stats([1.0]).mean == 1.0
    s = seed_stats([1.0, 3.0, math.nan, None])
    assert s.n == 2 and s.mean == 2.0
    assert s.ci95 == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)  # t(0.975, 1)·sd/√n
    assert seed_stats([]).n == 0 and not seed_stats([]).finite


def test_layer_profile_section_and_plot(tmp_path):
    study = write_fake_study(tmp_path, seeds=(0,))
    html_path = build_report(study)
    assert "Not available" in html_path.read_text() and not (study / "plots" / "layer_profile.png").exists()
    for enc in ("profound_conv", "provicnet"):
        for task in ("segmentation", "synthesis"):
            cell = study / "cells" / enc / task / "seed0"
            cell.mkdir(parents=True, exist_ok=True)
            layers = [{"stage": k, "dim": 8, "d2p": 0.1 * (k + 1), "cka_pretrained": 0.9} for k in range(4)]
            (cell / "alignment.json").write_text(json.dumps({"layers": layers}))
    text = build_report(study).read_text()
    assert "id='layers'" in text and "D2P stage 4" in text and "Layer-wise alignment profile" in text
    assert (study / "plots" / "layer_profile.png").stat().st_size > 5000
