"""How far to trust each estimator: its measured rank correlation with the fine-tuned gain over
the sources of a transfer matrix (`taskalign experiment transfer-matrix`, advise_trust.json).

`taskalign advise` reads the matrix the user names (`--trust DIR`), else the one shipped with the
package (`trust/quick.json`: the quick matrix's, copied from its folder with the command in
docs/transfer_matrix.md). The records are per (encoder, target task) of that matrix: an
estimator's ρ > 0 means it ranked that matrix's sources as fine-tuning did on that task.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

SHIPPED_TRUST = Path(__file__).parent / "trust" / "quick.json"


def load_trust(path: Path | None = None) -> dict | None:
    """advise_trust.json of a matrix folder (or the file itself); the shipped one when `path` is
    None (None when nothing is shipped)."""
    if path is None:
        path = SHIPPED_TRUST
        if not path.exists():
            return None
    path = Path(path)
    if path.is_dir():
        path = path / "advise_trust.json"
    if not path.exists():
        raise ValueError(f"{path} does not exist: give a transfer-matrix folder (taskalign experiment "
                         "transfer-matrix --out DIR) or its advise_trust.json")
    trust = json.loads(path.read_text())
    if "records" not in trust:
        raise ValueError(f"{path} is not a transfer matrix's advise_trust.json (no 'records')")
    return {**trust, "file": str(path)}


def _describe(records: list[dict], trust: dict) -> str:
    parts = []
    for r in records:
        if r.get("rho") is None or not math.isfinite(r["rho"]):
            parts.append(f"{r['encoder']}: not estimable over {r['n_sources']} sources")
            continue
        parts.append(f"{r['encoder']}: rho {r['rho']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                     f"p {r['p_value']:.3g}, {r['n_sources']} sources")
    where = f"{trust['preset']} transfer matrix, {trust['n_train']} labelled cases ({trust['file']})"
    return "; ".join(parts) + f" [{where}]"


def apply_trust(result: dict, trust: dict | None) -> dict:
    """A copy of an `advise` result with each estimator's measured rank correlation for the task."""
    out = copy.deepcopy(result)
    if trust is None:
        return out
    for name, info in out["estimators"].items():
        records = [r for r in trust["records"] if r["target"] == result["task"] and r["estimator"] == name]
        if records:
            info["rank_correlation_with_finetuned_gain"] = records
            info["rank_correlation_note"] = _describe(records, trust)
        else:
            info["rank_correlation_note"] = f"not measured for {result['task']} in {trust['file']}"
    return out
