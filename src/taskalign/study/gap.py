"""The phantom-to-real gap: how far the built-in phantom is from a user's folder, per encoder.

For each encoder, pretrained in-house on the phantom pretraining cohort (the study's own stage,
cached in the output folder), two-sample MMD² (unbiased U-statistic, RBF kernel, median-heuristic
bandwidth on the pooled sample) with a permutation p-value between pooled features of phantom
samples and of the folder's samples; then the same for region intensity statistics.

Samples. Every case (phantom downstream cases of the preset's data seed, and the folder's usable
cases) is put on a context grid at the preset's spacing, 1.5 × the preset's shape, centred on the
gland. 3D encoders: `crops_per_case` sub-volumes of the preset's shape at seeded random positions
that the image covers entirely. 2D encoders: every slice of the centred preset-shape crop (each
slice with its two neighbours, the encoder's 2.5D input). Region statistics: per slice of that
crop holding gland, (T2w gland mean / T2w body median, DWI gland mean / DWI body median, ADC
gland mean / 1000), each column standardised on the pooled sample.
Samples from one case are not independent, so with few real cases the p-value is optimistic:
it says the folder's samples differ from the phantom's, not that a population does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from taskalign.align.mmd import mmd2
from taskalign.data.case import SEQUENCES, Case
from taskalign.data.real import read_folder
from taskalign.data.real.check import no_usable_case
from taskalign.data.real.folder import reader_options
from taskalign.data.real.regrid import resample_case
from taskalign.errors import InputError
from taskalign.align.extract import pooled_features
from taskalign.study.config import preset
from taskalign.study.pretrain_stage import ensure_pretrained, load_encoder

CONTEXT_SCALE = 1.5


def context_case(case: Case, shape, spacing_mm) -> tuple[Case, np.ndarray]:
    """The case on the context grid and its coverage (D, H, W) bool: voxels inside the image."""
    ctx = resample_case(case, shape, spacing_mm, "gland")
    ones = Case(case.case_id, np.ones_like(case.image), case.spacing_mm, gland=case.gland, meta=case.meta)  # same centre
    covered = resample_case(ones, shape, spacing_mm, "gland").image[0] > 0.999
    return ctx, covered


def crop_positions(covered: np.ndarray, crop, n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """`n` seeded positions (z, y, x) whose crop lies fully inside `covered` (the centred one
    when none does)."""
    ranges = [range(0, c - k + 1) for c, k in zip(covered.shape, crop)]
    valid = [(z, y, x) for z in ranges[0] for y in ranges[1][::2] for x in ranges[2][::2]
             if covered[z:z + crop[0], y:y + crop[1], x:x + crop[2]].all()]
    if not valid:
        return [tuple((c - k) // 2 for c, k in zip(covered.shape, crop))] * n
    return [valid[i] for i in rng.choice(len(valid), size=n, replace=len(valid) < n)]


def centre_crop(case: Case, crop) -> tuple[np.ndarray, np.ndarray | None]:
    start = [(c - k) // 2 for c, k in zip(case.shape, crop)]
    sl = tuple(slice(s, s + k) for s, k in zip(start, crop))
    return case.image[(slice(None),) + sl], (case.gland[sl] if case.gland is not None else None)


def region_rows(image: np.ndarray, gland: np.ndarray | None, sequences: tuple[str, ...]) -> list[list[float]]:
    """Per slice with >= 10 gland voxels: [gland mean / body median for T2w and DWI, ADC gland mean / 1000]."""
    if gland is None:
        return []
    t2w = image[0]
    body = t2w > np.percentile(t2w[t2w > 0], 5.0) if (t2w > 0).any() else np.zeros_like(t2w, bool)
    medians = {s: float(np.median(image[SEQUENCES.index(s)][body])) if body.any() else 0.0 for s in sequences}
    rows = []
    for z in range(image.shape[1]):
        g = gland[z] > 0
        if g.sum() < 10:
            continue
        row = []
        for s in sequences:
            mean = float(image[SEQUENCES.index(s)][z][g].mean())
            row.append(mean / 1000.0 if s == "adc" else mean / max(medians[s], 1e-6))
        rows.append(row)
    return rows


def encoder_samples(encoder, cases: list[tuple[Case, np.ndarray]], crop, crops_per_case: int, seed: int) -> torch.Tensor:
    """(n, pooled_dim) features: crops for 3D encoders, slices of the centre crop for 2D ones."""
    rng = np.random.default_rng(seed)
    if encoder.spatial_dims == 3:
        inputs = []
        for case, covered in cases:
            for z, y, x in crop_positions(covered, crop, crops_per_case, rng):
                sub = case.image[:, z:z + crop[0], y:y + crop[1], x:x + crop[2]]
                inputs.append(encoder.preprocess(sub, SEQUENCES, None))
        with torch.no_grad():
            return pooled_features(encoder, inputs)
    feats = []
    encoder.eval()
    device = next(encoder.parameters()).device
    with torch.no_grad():
        for case, _ in cases:
            image, gland = centre_crop(case, crop)
            x = torch.from_numpy(encoder.preprocess(image, SEQUENCES, gland)[None]).float().to(device)
            for z in range(crop[0]):
                feats.append(encoder.forward_features(x, torch.tensor([z]))["pooled"].cpu())
    return torch.cat(feats).float()


def _test(x, y, permutations: int, seed: int) -> dict:
    res = mmd2(x, y, permutations=permutations, seed=seed)
    return {"mmd2": float(res.mmd2), "p_value": float(res.p_value), "n_phantom": int(res.n_x), "n_real": int(res.n_y),
            "bandwidth": float(res.bandwidths[0]), "permutations": permutations}


def compare(encoders: dict, phantom: list, other: list, crop, crops_per_case: int, permutations: int, seed: int,
            sequences: tuple[str, ...]) -> dict:
    """MMD² tests of phantom samples against another group's, per encoder and for region statistics."""
    out: dict = {"encoders": {}}
    for name, encoder in encoders.items():
        kind = "crops" if encoder.spatial_dims == 3 else "slices"
        x = encoder_samples(encoder, phantom, crop, crops_per_case, seed)
        y = encoder_samples(encoder, other, crop, crops_per_case, seed + 1)
        out["encoders"][name] = {"samples": kind, **_test(x, y, permutations, seed)}
    rows = [np.array([r for c, _ in group for r in region_rows(*centre_crop(c, crop), sequences)])
            for group in (phantom, other)]
    if all(len(r) >= 2 for r in rows):
        scale = np.concatenate(rows).std(axis=0) + 1e-12
        out["region_stats"] = {"samples": "gland slices", "features": [f"{s}_gland_rel" for s in sequences],
                               **_test(rows[0] / scale, rows[1] / scale, permutations, seed)}
    return out


def phantom_real_gap(data: str | Path, out: str | Path, layout: str | None = None, preset_name: str = "quick",
                     encoders: tuple[str, ...] = ("profound_conv", "provicnet"), n_phantom: int = 16,
                     crops_per_case: int = 8, permutations: int = 500, seed: int = 0, dwi: str | None = None,
                     log: Callable[[str], None] = print, columns: dict[str, str] | None = None,
                     label_rule: str | None = None, series: dict[str, str] | None = None) -> dict:
    """The gap report (see the module doc) as a dict; pretrained weights are cached under `out`.

    `baseline` holds the same tests against as many held-out phantom cases (other indices, same
    cohort) as the folder has usable cases: the MMD² that the sampling alone gives at that n."""
    from taskalign.data.phantom import phantom_case

    cfg = preset(preset_name, encoders=tuple(encoders))
    d = cfg.data
    crop = tuple(d.shape)
    context = tuple(int(round(s * CONTEXT_SCALE)) for s in crop)
    options = reader_options(layout, data, dwi=dwi, columns=columns, label_rule=label_rule, series=series)
    result = read_folder(data, layout, check_gzip="crc", **options)
    if not result.cases:
        raise InputError(f"{no_usable_case(result)}; run `taskalign data check {data}`")
    real = [context_case(c, context, d.spacing_mm) for c in result.cases]
    draw = lambda i: (phantom_case(i, d.data_seed, "downstream", context, d.spacing_mm), np.ones(context, bool))  # noqa: E731
    phantom = [draw(i) for i in range(n_phantom)]
    held_out = [draw(n_phantom + i) for i in range(len(real))]
    absent = {s for c in result.cases for s in c.meta.get("absent_sequences", ())}
    sequences = tuple(s for s in SEQUENCES if s not in absent)
    loaded = {enc: load_encoder(enc, cfg, SEQUENCES, ensure_pretrained(Path(out), enc, cfg, log=log))
              for enc in encoders}
    report = {"data": str(data), "layout": result.layout, "preset": preset_name, "grid": list(crop),
              "spacing_mm": list(d.spacing_mm), "n_real_cases": len(real), "n_phantom_cases": n_phantom,
              "excluded": result.excluded, "notes": result.notes, "pretrain": cfg.pretrain.source}
    report.update(compare(loaded, phantom, real, crop, crops_per_case, permutations, seed, sequences))
    report["baseline"] = compare(loaded, phantom, held_out, crop, crops_per_case, permutations, seed, sequences)
    return report
