"""The report's opening: the claims with their verdicts and intervals, the pretraining gain, D2P
against the gain, and the label-efficiency curves (the sections a reader needs for the answer).

A claim's interval comes from summary.json where it has one (the correlation claims: the
regime's `by_regime[...].correlations` record of D2P against the claim's outcome, its 95 %
interval with the cells resampled); for the claims "A gains more than B on T1 and T2" the report
computes it from results.csv: per task, the RPG difference A − B per seed, its mean with the 95 %
t interval over seeds (none with one seed). summary.json's claims carry no interval of their own.
"""
from __future__ import annotations

import base64
import re
from typing import Any

from taskalign.report.cells import seed_stats
from taskalign.report.load import StudyData
from taskalign.report.markup import Raw, _ci, _e, _table
from taskalign.report.plots import PlotFile

# the words of a correlation claim (summary.claims) -> the outcome it correlates D2P with
CLAIM_OUTCOMES = (("(rpg)", "rpg"), ("fine-tuned − scratch", "gain_over_scratch"), ("convergence", "convergence_epoch"))
ENCODER_CLAIM = re.compile(r"^(?P<a>\S+) gains more than (?P<b>\S+) on (?P<tasks>.+)$")


def answer_sections(study: StudyData, plots: list[PlotFile]) -> list[str]:
    """The four opening sections, in order: claims, gain, D2P vs gain, label efficiency."""
    return [claims_section(study), _figures_section("Pretraining gain per task and encoder", "gain", plots),
            _figures_section("Does D2P go with the gain?", "alignment", plots), _efficiency_section(study, plots)]


def claims_section(study: StudyData) -> str:
    """The verdict block: one row per claim and labelled-set size, largest size first."""
    claims = study.summary.get("claims") or []
    head = "<h2 id='answer'>The answer: claims and verdicts</h2>\n"
    if not claims:
        return head + "<p>No claims in summary.json.</p>"
    sizes = sorted({c.get("n_train") for c in claims if c.get("n_train") is not None})
    ordered = sorted(claims, key=lambda c: -(c.get("n_train") or 0))
    only = study.regimes[0] if len(study.regimes) == 1 else None   # claims written before sizes carry none
    rows = [[_int_or_na(c.get("n_train", only)), c.get("claim", ""), verdict_badge(str(c.get("verdict", "n/a"))),
             c.get("evidence", ""), claim_interval(study, c)] for c in ordered]
    lead = ("<p class='small'>Each claim of the paper checked on this study (summary.json), "
            + (f"separately at each labelled-set size ({_e(', '.join(str(n) for n in sizes))} labelled cases; "
               "the largest first: it is the headline). " if len(sizes) > 1 else "")
            + "“holds” needs p &lt; 0.05 in the claimed direction (correlations) or the same direction in every "
            "seed with three seeds or more (encoder comparisons). Interval: for a correlation claim the 95 % "
            "bootstrap interval of Spearman ρ with the cells resampled; for an encoder comparison, per task, "
            "the mean RPG difference over seeds with its 95 % t interval (computed by the report from "
            "results.csv).</p>\n")
    return head + lead + _table("claims", ["labelled cases", "claim", "verdict", "evidence", "95 % interval"],
                                rows, left=(1, 2, 3, 4))


def claim_interval(study: StudyData, claim: dict[str, Any]) -> str:
    """The interval text of one claim (module docstring), or 'n/a'."""
    text, n_train = str(claim.get("claim", "")), claim.get("n_train")
    outcome = next((o for words, o in CLAIM_OUTCOMES if words in text.lower()), None)
    if outcome is not None and "d2p" in text.lower():
        corr = _regime_correlation(study.summary, n_train, outcome)
        if corr is None:
            return "n/a"
        return f"ρ {_ci(corr.get('spearman_ci_cells') or corr.get('spearman_ci'))} (cells resampled)"
    match = ENCODER_CLAIM.match(text)
    if match is None:
        return "n/a"
    a, b = match["a"], match["b"]
    rows = [r for r in study.rows if n_train is None or r["n_train"] == n_train]
    parts = []
    for task in (t.strip() for t in match["tasks"].split(" and ")):
        by_seed = {r["seed"]: r["rpg"] for r in rows if r["task"] == task and r["encoder"] == a}
        diffs = [by_seed[r["seed"]] - r["rpg"] for r in rows
                 if r["task"] == task and r["encoder"] == b and r["seed"] in by_seed]
        s = seed_stats(diffs)
        if not s.finite:
            parts.append(f"{task}: n/a")
        elif s.n < 2:
            parts.append(f"{task}: ΔRPG {s.mean:+.1f} % (one seed, no interval)")
        else:
            parts.append(f"{task}: ΔRPG {s.mean:+.1f} % [{s.mean - s.ci95:+.1f}, {s.mean + s.ci95:+.1f}]")
    return "; ".join(parts) or "n/a"


def verdict_badge(verdict: str) -> Raw:
    cls = {"holds": "holds", "does not hold": "fails"}.get(verdict, "unsure")
    return Raw(f"<span class='badge {cls}'>{_e(verdict)}</span>")


def figure_html(plot: PlotFile) -> str:
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{_e(plot.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption><strong>{_e(plot.title)}.</strong> {_e(plot.caption)}</figcaption></figure>")


def _figures_section(title: str, group: str, plots: list[PlotFile]) -> str:
    figures = [figure_html(p) for p in plots if p.group == group]
    body = "\n".join(figures) if figures else "<p>Figure not drawn.</p>"
    return f"<h2 id='{_e(group)}'>{_e(title)}</h2>\n{body}"


def _efficiency_section(study: StudyData, plots: list[PlotFile]) -> str:
    head = "<h2 id='efficiency'>Label efficiency</h2>\n"
    figures = [figure_html(p) for p in plots if p.group == "efficiency"]
    if figures:
        return head + "\n".join(figures)
    sizes = ", ".join(str(n) for n in study.regimes) or "unknown"
    return (head + "<p id='label-efficiency-note'>The label-efficiency curve needs several labelled-set sizes: "
            f"run the study with <code>--train-cases</code> and several sizes (e.g. <code>--train-cases "
            f"8,16,48</code>); this study has one ({_e(sizes)} labelled cases).</p>")


def _regime_correlation(summary: dict[str, Any], n_train: Any, outcome: str) -> dict[str, Any] | None:
    pool = summary.get("correlations") or []
    for regime in summary.get("by_regime") or []:
        if regime.get("n_train") == n_train:
            pool = regime.get("correlations") or []
    return next((c for c in pool if c.get("alignment") == "d2p" and c.get("outcome") == outcome), None)


def _int_or_na(x: Any) -> str:
    return str(x) if isinstance(x, int) and not isinstance(x, bool) else "n/a"
