"""The report on a real smoke study folder with two labelled-set sizes (slow: it runs the study)."""
import csv
import dataclasses
import re

import pytest

from taskalign.report import build_report, load_study
from taskalign.study.config import preset
from taskalign.study.runner import run_study

pytestmark = pytest.mark.slow
SIZES = (4, 8)


@pytest.fixture(scope="module")
def smoke_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report_smoke")
    base = preset("smoke", tasks=("classification", "segmentation"))
    data = dataclasses.replace(base.data, train_cases=SIZES, n_train=max(base.data.n_train, max(SIZES)))
    run_study(dataclasses.replace(base, data=data), out, log=lambda s: None, report=False)
    return out


def test_real_smoke_folder_renders_with_the_answer_first(smoke_folder):
    html = build_report(smoke_folder).read_text(encoding="utf-8")
    study = load_study(smoke_folder)
    assert study.regimes == list(SIZES) and not study.legacy_layout
    assert {k[2] for k in study.curves} == set(SIZES)            # cells/<model>/<task>/n<k>/seed<s>/ read
    h2 = re.findall(r"<h2[^>]*>(.*?)</h2>", html)
    assert h2[0].startswith("The answer") and h2[-1] == "Configuration"
    for name in ("pretraining_gain.png", "d2p_vs_gain.png", "d2p_vs_rpg.png", "label_efficiency.png"):
        assert (smoke_folder / "plots" / name).stat().st_size > 10_000, name
    assert "alt='Label efficiency'" in html and "bootstrap resamples of the test cases" in html   # one seed
    with open(smoke_folder / "results.csv", newline="") as f:
        n_rows = sum(1 for _ in csv.DictReader(f))
    results = html.split("id='results'")[1].split("</table>")[0]
    assert results.count("<tr>") - 1 == n_rows                   # a row per results.csv row (+ header)
    claims = html.split("id='claims'")[1].split("</table>")[0]
    assert all(f"<td>{n}</td>" in claims for n in SIZES)         # the claims at each size
