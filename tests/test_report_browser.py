"""report.html in a real browser: headless Chromium loads the page, every plot image decodes, the
tables are there; a screenshot is kept as a test artefact (runs/artifacts/report.png)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fake_study import write_fake_study
from taskalign.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "artifacts"
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
                                                      w: i.naturalWidth, h: i.naturalHeight}));
  const tables = Array.from(document.querySelectorAll('table')).map(t => ({id: t.id, rows: t.rows.length}));
  const out = document.createElement('pre');
  out.id = 'probe-result';
  out.textContent = JSON.stringify({imgs, tables});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found: install Debian's package (apt-get install -y chromium; .ci/run "
                "does this) to run the browser test of report.html")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", "--virtual-time-budget=10000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    study = write_fake_study(tmp_path_factory.mktemp("browser"), seeds=(0, 1))
    return build_report(study)


def test_every_plot_decodes_and_tables_are_there(report, tmp_path):
    browser = _chromium()
    html = report.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    done = _run(browser, "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"<pre id=\"probe-result\">(.*?)</pre>", done.stdout, re.S)
    assert match, "the probe script did not run: " + done.stdout[-500:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    expected_imgs = html.count("<img ")
    assert len(result["imgs"]) == expected_imgs >= 5
    bad = [i["alt"] for i in result["imgs"] if not i["ok"]]
    assert not bad, f"images that did not decode: {bad}"
    assert all(i["w"] > 100 and i["h"] > 100 for i in result["imgs"])
    tables = {t["id"]: t["rows"] for t in result["tables"]}
    for table in ("results", "results-mean", "correlations", "within-task", "paired", "claims", "versions"):
        assert tables.get(table, 0) >= 2, f"table {table!r} missing or empty: {tables}"


def test_screenshot_is_saved_as_an_artefact(report):
    browser = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = _run(browser, f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
