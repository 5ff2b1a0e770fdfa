"""The report stage on a made-up finished study folder (tests/fake_study.py)."""
from __future__ import annotations

import base64
import csv
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
from taskalign.report.plots import plot_alignment_scatter
from taskalign.report.plots_outcomes import plot_pretraining_gain

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
                             claim_text="<script>alert('x')</script> & co", train_cases=(8,))
    build_report(study)
    return study


def test_report_embeds_every_plot_as_a_png(two_seeds):
    text, reader = _read(two_seeds / "report.html")
    pngs = sorted((two_seeds / "plots").glob("*.png"))
    # gain, two D2P scatters (gain, RPG), label efficiency, convergence scatter, drift bars, a curve per task
    assert len(pngs) == 6 + 5
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
    assert len(rows) == len(study.rows) == 2 * 5 * 2 * 2   # encoders × tasks × sizes × seeds
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {(r["task"], r["encoder"], str(r["n_train"]), str(r["seed"]))
                                                        for r in study.rows}
    assert {r[2] for r in rows} == {"8", "24"}
    assert len(reader.tables["results-mean"]) == 2 * 5 * 2
    assert all("±" in r[4] for r in reader.tables["results-mean"])  # value ± 95 % CI with two seeds


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
    assert rows[("classification", "profound_conv")][13] == "n/a"   # D2P column
    assert rows[("segmentation", "provicnet")][8] == "n/a"          # RPG column
    assert any(r[10].startswith(">") for r in rows.values())        # a censored convergence epoch
    assert "results-mean" not in reader.tables                     # one seed: nothing to average
    corr = {(r[0], r[1]): r for r in reader.tables["correlations"]}
    assert corr[("cka_pretrained", "convergence_epoch")][6] == "n/a"  # NaN p-value in summary.json


def _yerr_bars(ax) -> int:
    return sum(1 for c in ax.containers if isinstance(c, ErrorbarContainer) and c.has_yerr)


def test_gain_figure_intervals(one_seed_nan, two_seeds, tmp_path):
    one, two = load_study(one_seed_nan), load_study(two_seeds)
    single = plot_pretraining_gain(one.rows, one.summary["paired_vs_scratch"], tmp_path / "one.png")
    several = plot_pretraining_gain(two.rows, two.summary["paired_vs_scratch"], tmp_path / "two.png")
    top, bottom = single.axes[:5], single.axes[5:10]      # (2, tasks) panels, row-major
    assert all(_yerr_bars(ax) == 2 for ax in top)         # paired case-bootstrap interval, even with one seed
    assert sum(_yerr_bars(ax) for ax in bottom) == 0      # RPG: one seed, no interval over seeds
    assert all(_yerr_bars(ax) == 2 * 2 for ax in several.axes[5:10])   # two encoders × two sizes
    notes = [t.get_text() for t in single.texts]
    assert any("RPG provicnet/segmentation/n8" in n for n in notes)    # the NaN cell is named
    # without paired records the top row falls back to the seed means of gain_over_scratch
    fallback = plot_pretraining_gain(two.rows, [], tmp_path / "fallback.png")
    assert any("no paired per-case record" in t.get_text() for t in fallback.texts)
    assert (tmp_path / "one.png").read_bytes().startswith(PNG_SIGNATURE)


def test_first_section_is_the_answer(two_seeds, one_seed_nan):
    for study in (two_seeds, one_seed_nan):
        text, reader = _read(study / "report.html")
        h2 = re.findall(r"<h2[^>]*>(.*?)</h2>", text)
        assert h2[0].startswith("The answer"), h2[:3]
        assert h2[1:4] == ["Pretraining gain per task and encoder", "Does D2P go with the gain?", "Label efficiency"]
        assert h2[-1] == "Configuration" and h2.index("Results") > h2.index("Paired per-case comparison with the "
                                                                            "specialised model")
        assert text.index("id='claims'") < text.index("id='results'") < text.index("config.json (resolved")


def test_claims_carry_verdict_and_interval_per_size(two_seeds):
    _, reader = _read(two_seeds / "report.html")
    claims = reader.tables["claims"]
    assert len(claims) == 3 * 2 and [r[0] for r in claims] == ["24"] * 3 + ["8"] * 3   # largest size first
    by_claim = {(r[0], r[1]): r for r in claims}
    rpg = by_claim[("24", "smaller feature change (D2P) goes with a larger gain (RPG)")]
    summary = json.loads((two_seeds / "summary.json").read_text())
    regime = next(r for r in summary["by_regime"] if r["n_train"] == 24)
    corr = next(c for c in regime["correlations"] if c["alignment"] == "d2p" and c["outcome"] == "rpg")
    assert rpg[2] == "holds" and rpg[4] == f"ρ [{corr['spearman_ci_cells'][0]:.3f}, {corr['spearman_ci_cells'][1]:.3f}] (cells resampled)"
    encoder = by_claim[("8", "profound_conv gains more than provicnet on distortion_correction and super_resolution")]
    assert encoder[4].startswith("distortion_correction: ΔRPG +") and "super_resolution: ΔRPG" in encoder[4]
    assert encoder[4].count("[") == 2                    # two seeds: an interval per task


def test_label_efficiency_figure_needs_two_sizes(two_seeds, one_seed_nan):
    text, _ = _read(two_seeds / "report.html")
    assert (two_seeds / "plots" / "label_efficiency.png").stat().st_size > 10_000
    assert "alt='Label efficiency'" in text and "label-efficiency-note" not in text
    assert "95 % t interval over seeds" in text
    text, _ = _read(one_seed_nan / "report.html")
    assert not (one_seed_nan / "plots" / "label_efficiency.png").exists()
    assert "alt='Label efficiency'" not in text
    assert "id='label-efficiency-note'" in text and "--train-cases</code> and several sizes" in text


def test_label_efficiency_one_seed_uses_a_case_bootstrap(tmp_path):
    from taskalign.report.efficiency import label_efficiency
    study = load_study(write_fake_study(tmp_path, seeds=(0,), train_cases=(8, 24)))
    points, interval = label_efficiency(study, bootstrap=200)
    assert "bootstrap resamples of the test cases" in interval
    assert len(points) == 5 * 2 * (2 * 2 + 1)          # tasks × sizes × (encoders, their scratch twins, specialised)
    psnr = [p for p in points if p.task == "synthesis"]
    assert all(p.low < p.high for p in psnr)            # an interval from the per-case PSNRs
    assert all(p.low - 1.0 < p.mean < p.high + 1.0 for p in psnr)
    (study.study_dir / "cells" / "specialised" / "synthesis" / "n8" / "seed0" / "per_case.csv").unlink()
    points, _ = label_efficiency(study, bootstrap=200)
    spec = next(p for p in points if (p.task, p.model, p.n_train) == ("synthesis", "specialised", 8))
    assert math.isnan(spec.low) and math.isfinite(spec.mean)   # no per-case file: a point without interval


def test_legacy_folder_reads_as_one_size(tmp_path):
    """A folder written before regimes: cells/<model>/<task>/seed<s>/ and no n_train column."""
    study = write_fake_study(tmp_path, seeds=(0,), train_cases=(8,))
    for run in sorted((study / "cells").glob("*/*/n8/seed0")):
        run.rename(run.parent.parent / "seed0")
        run.parent.rmdir()
    with open(study / "results.csv", newline="") as f:
        table = list(csv.reader(f))
    col = table[0].index("n_train")
    with open(study / "results.csv", "w", newline="") as f:
        csv.writer(f).writerows(r[:col] + r[col + 1:] for r in table)
    loaded = load_study(study)
    assert loaded.legacy_layout and loaded.regimes == [8]                  # splits.json has 8 train cases
    assert ("profound_conv", "synthesis", 8, 0) in loaded.curves
    text = build_report(study).read_text()
    assert "written before labelled-set sizes existed" in text


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
            cell = study / "cells" / enc / task / "n24" / "seed0"
            cell.mkdir(parents=True, exist_ok=True)
            layers = [{"stage": k, "dim": 8, "d2p": 0.1 * (k + 1), "cka_pretrained": 0.9} for k in range(4)]
            (cell / "alignment.json").write_text(json.dumps({"layers": layers}))
    text = build_report(study).read_text()
    assert "id='layers'" in text and "D2P stage 4" in text and "Layer-wise alignment profile" in text
    assert "<td>24</td>" in text.split("id='layers'")[1].split("</table>")[0]   # the size column
    assert (study / "plots" / "layer_profile.png").stat().st_size > 5000


def test_markdown_summary_matches_the_results_table(two_seeds):
    """`taskalign report DIR --markdown`: one row per (task, size, encoder), means over seeds with
    their 95 % t half-width, the paired gain from summary.json, and the claims."""
    from taskalign.cli import main
    from taskalign.report.markdown import CELL_HEADER, markdown_summary

    study = load_study(two_seeds)
    text = markdown_summary(study)
    lines = text.splitlines()
    header = "| " + " | ".join(CELL_HEADER) + " |"
    start = lines.index(header) + 2
    rows = [line.strip("| ").split(" | ") for line in lines[start:start + 40] if line.startswith("| ")]
    rows = rows[:len({(r["task"], r["n_train"], r["encoder"]) for r in study.rows})]
    assert len(rows) == len({(r["task"], r["n_train"], r["encoder"]) for r in study.rows})
    task, _, n, encoder = rows[0][:4]
    values = [r["value"] for r in study.rows if (r["task"], str(r["n_train"]), r["encoder"]) == (task, n, encoder)]
    stats = seed_stats(values)
    assert rows[0][4] == f"{stats.mean:.3f} ± {stats.ci95:.3f}"
    paired = next(p for p in study.summary["paired_vs_scratch"]
                  if (p["encoder"], p["task"], str(p["n_train"])) == (encoder, task, n))
    assert rows[0][7].startswith(f"{paired['mean_difference']:+.3f} [")
    assert all(c["claim"].replace("|", "\\|") in text for c in study.summary["claims"])
    assert main(["report", str(two_seeds), "--markdown"]) == 0
