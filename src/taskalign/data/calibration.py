"""Phantom versus a real case: region statistics, contrast ratios, a side-by-side figure.

The statistics are those of the PI-CAI sample's README: means of T2w, ADC and DWI over the gland,
the lesion and the gland without the lesion, and the T2w median and 90th percentile over the
body, where body = T2w above the 5th percentile of its non-zero voxels. The three contrast
ratios are lesion / gland on T2w and lesion / (gland without lesion) on ADC and DWI.
The phantom cases compared are the first downstream cases of the seed with a single clinically
significant transition-zone lesion of at least `MIN_LESION_CC` (the real lesion is a TZ lesion),
rendered on the real case's grid.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from taskalign.data.case import SEQUENCES, Case
from taskalign.data.manifest import read_manifest
from taskalign.data.phantom.cohort import describe_case, phantom_case

MIN_LESION_CC = 1.5
RATIOS = ("t2w_lesion_over_gland", "adc_lesion_over_rest", "dwi_lesion_over_rest")
ADC_WINDOW = (0.0, 3000.0)
WINDOW_OVER_GLAND_MEDIAN = 2.5  # T2w and DWI panels: 0 .. 2.5 × the gland median of that image


def region_stats(case: Case) -> dict[str, float]:
    """Region means per sequence (gland, lesion, gland without lesion), T2w body median and p90,
    and the three contrast ratios. Needs `gland` and `lesion` masks."""
    if case.gland is None or case.lesion is None:
        raise ValueError(f"case {case.case_id}: region statistics need gland and lesion masks")
    gland, lesion = case.gland > 0, case.lesion > 0
    if not gland.any() or not lesion.any():
        raise ValueError(f"case {case.case_id}: gland or lesion mask is empty on this grid")
    rest = gland & ~lesion
    out: dict[str, float] = {}
    for name in SEQUENCES:
        img = case.sequence(name)
        out[f"{name}_gland"] = float(img[gland].mean())
        out[f"{name}_lesion"] = float(img[lesion].mean())
        out[f"{name}_gland_without_lesion"] = float(img[rest].mean())
    t2w = case.sequence("t2w")
    body = t2w > np.percentile(t2w[t2w > 0], 5.0)
    out["t2w_body_median"] = float(np.median(t2w[body]))
    out["t2w_body_p90"] = float(np.percentile(t2w[body], 90.0))
    out["t2w_lesion_over_gland"] = out["t2w_lesion"] / out["t2w_gland"]
    out["adc_lesion_over_rest"] = out["adc_lesion"] / out["adc_gland_without_lesion"]
    out["dwi_lesion_over_rest"] = out["dwi_lesion"] / out["dwi_gland_without_lesion"]
    return out


def pick_tz_cases(seed: int, n: int = 1, cohort: str = "downstream", max_index: int = 2000) -> list[int]:
    """Indices of the first `n` cases with exactly one cancer focus: significant, in the TZ, >= MIN_LESION_CC."""
    found = []
    for index in range(max_index):
        _, findings = describe_case(index, seed, cohort)
        cancers = [f for f in findings if f.kind == "cancer"]
        if (len(cancers) == 1 and cancers[0].zone == "tz" and cancers[0].significant
                and cancers[0].volume_cc >= MIN_LESION_CC):
            found.append(index)
            if len(found) == n:
                return found
    raise ValueError(f"only {len(found)} phantom cases with a single significant TZ lesion among the first {max_index} "
                     f"of seed {seed}; ask for fewer than {n}")


def _lesion_slice(case: Case) -> int:
    return int(np.argmax((case.lesion > 0).sum(axis=(1, 2))))


def plot_side_by_side(cases: list[tuple[str, Case]], path: Path) -> None:
    """Rows = cases, columns = T2w / ADC / DWI at the slice with the largest lesion area."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cases), 3, figsize=(12, 4.3 * len(cases) + 0.5), squeeze=False, layout="constrained")
    for row, (title, case) in enumerate(cases):
        z, gland = _lesion_slice(case), case.gland > 0
        for col, name in enumerate(("t2w", "adc", "dwi")):
            img = case.sequence(name)
            vmax = ADC_WINDOW[1] if name == "adc" else WINDOW_OVER_GLAND_MEDIAN * float(np.median(img[gland]))
            ax = axes[row, col]
            ax.imshow(img[z], cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.contour(case.lesion[z] > 0, [0.5], colors="red", linewidths=0.6, alpha=0.5)
            ax.set_title(f"{title} {name.upper()} (slice {z}, 0-{vmax:.0f})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Phantom vs real, mid-gland slice through the lesion (red outline). Windows: T2w and DWI "
                 f"0 to {WINDOW_OVER_GLAND_MEDIAN} x the image's gland median; ADC fixed {ADC_WINDOW[0]:.0f}-"
                 f"{ADC_WINDOW[1]:.0f} x 1e-6 mm2/s", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _write_tables(rows: list[tuple], header: list[str], title: str, out: Path) -> None:
    with (out / "phantom_vs_real.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([(row[0], *(f"{v:.4g}" for v in row[1:])) for row in rows])
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, *values, diff in rows:
        lines.append(f"| {key} | " + " | ".join(f"{v:.4g}" for v in values) + f" | {diff:+.4g} |")
    (out / "phantom_vs_real.md").write_text("\n".join(lines) + "\n")


def compare_real(real_csv: str, out_dir: str, seed: int = 0, n_cases: int = 5) -> dict:
    """Compare phantom TZ-lesion cases with the first case of a real manifest, on the real grid.

    The first `n_cases` qualifying phantom cases are rendered on the real case's grid; the table
    gives the first case, the mean over all of them (one patient's ratios vary), the real case and
    mean - real. Writes `phantom_vs_real.png`, `.csv` and `.md` to `out_dir`; returns the paths,
    the case ids and the three contrast ratios as (phantom mean, real) pairs.
    """
    real = read_manifest(real_csv)[0]
    phantoms = [phantom_case(i, seed, "downstream", shape=real.shape, spacing_mm=real.spacing_mm)
                for i in pick_tz_cases(seed, n_cases)]
    stats = [region_stats(case) for case in phantoms]
    real_stats = region_stats(real)
    mean = {key: float(np.mean([s[key] for s in stats])) for key in real_stats}
    rows = [(key, stats[0][key], mean[key], real_stats[key], mean[key] - real_stats[key]) for key in real_stats]
    header = ["statistic", phantoms[0].case_id, f"phantom mean of {len(phantoms)}", f"real {real.case_id}",
              "mean - real"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_tables(rows, header, f"Phantom TZ-lesion cases (seed {seed}) vs real `{real.case_id}` on the real grid "
                  f"{real.shape} at {real.spacing_mm} mm: region means, then the contrast ratios", out)
    plot_side_by_side([(f"phantom {phantoms[0].case_id}", phantoms[0]), (f"real {real.case_id}", real)],
                      out / "phantom_vs_real.png")
    result: dict = {"phantom_cases": [c.case_id for c in phantoms], "real_case": real.case_id,
                    "png": str(out / "phantom_vs_real.png"), "csv": str(out / "phantom_vs_real.csv"),
                    "md": str(out / "phantom_vs_real.md")}
    result.update({key: (round(mean[key], 3), round(real_stats[key], 3)) for key in RATIOS})
    return result
