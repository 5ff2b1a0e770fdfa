"""The text table of `taskalign advise`: per estimator, each candidate's score with its interval
and rank, the estimator's direction, and how far it is to be trusted."""
from __future__ import annotations

from taskalign.advise.scoring import ESTIMATORS


def _cell(score: dict) -> str:
    if score["value"] is None:
        return "not estimable"
    text = f"{score['value']:.4g}"
    iv = score["interval"]
    if not iv:
        return text + " [no interval]"
    rests = f" (on {iv['resamples']} halves; {iv['skipped']} undefined, e.g. one class)" if iv["skipped"] else ""
    return text + f" [{iv['low']:.4g}, {iv['high']:.4g}]{rests}"


def _separation(result: dict, name: str) -> str | None:
    """Whether the best candidate's interval clears the runner-up's (a conservative check: the
    intervals are marginal, not paired)."""
    ranks = result["ranking"][name]
    ordered = sorted(ranks, key=ranks.get)
    if len(ordered) < 2:
        return None
    first, second = (result["scores"][label][name]["interval"] for label in ordered[:2])
    if not first or not second:
        return None
    apart = first["low"] > second["high"] or first["high"] < second["low"]
    return ("the best candidate's interval clears the runner-up's" if apart else
            "the intervals of #1 and #2 overlap: these cases do not separate them")


def format_result(result: dict) -> str:
    """Human-readable report of an `advise` result."""
    labels = [c["label"] for c in result["candidates"]]
    width = max(len(label) for label in labels) + 2
    lines = [f"task {result['task']}; target: {result['target']}",
             (f"intervals: 95 %, {result['resamples']} random halves of the {result['n_cases']} target cases "
              "(half-sampling)" if result["n_cases"] >= 4 else "intervals: none (fewer than 4 target cases)")]
    for cand in result["candidates"]:
        lines.append(f"  {cand['label']}: {cand['source']} weights{' ' + cand['weights'] if cand['weights'] else ''}; "
                     f"{cand['n_rows']} {cand['unit']} rows x {cand['n_features']} features")
        lines += [f"    note: {note}" for note in cand["notes"]]
    lines += [f"  target note: {note}" for note in result["target_notes"]]
    lines += [f"LIMITS: {limit}" for limit in result["limits"]]
    for name in ESTIMATORS:
        info = result["estimators"][name]
        first = result["scores"][labels[0]][name]
        lines.append("")
        lines.append(f"{name} ({first['metric'] or 'score'}; {'larger' if info['higher_is_better'] else 'smaller'} "
                     f"is better); rank correlation with fine-tuned gain: {info['rank_correlation_note']}")
        ranks = result["ranking"][name]
        for label in sorted(labels, key=lambda lb: ranks.get(lb, len(labels) + 1)):
            score = result["scores"][label][name]
            rank = f"#{ranks[label]}" if label in ranks else "  -"
            lines.append(f"  {rank:>3} {label:<{width}} {_cell(score)}")
            for remark in (score["not_estimable"], score["caution"]):
                lines += [f"      {remark}"] if remark else []
        separation = _separation(result, name)
        lines += [f"  {separation}"] if separation else []
    lines.append("")
    if result["mean_rank"]:
        best = sorted(result["mean_rank"].items(), key=lambda kv: kv[1])
        lines.append("mean rank over the estimators that ranked every candidate without a caution (1 = best): "
                     + ", ".join(f"{label} {rank:.1f}" for label, rank in best))
    elif result["n_cases"] < 2:
        lines.append("no mean rank: one target case says nothing about other patients (see LIMITS)")
    else:
        lines.append("no estimator could rank every candidate on this target data")
    return "\n".join(lines)
