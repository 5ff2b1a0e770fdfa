"""Phantom versus a real case: region statistics, contrast ratios, a side-by-side figure.

The statistics are those of the PI-CAI sample's README: means of T2w, ADC and DWI over the gland,
the lesion and the gland without the lesion, and the T2w median and 90th percentile over the
body, where body = T2w above the 5th percentile of its non-zero voxels. The three contrast
ratios are lesion / gland on T2w and lesion / (gland without lesion) on ADC and DWI.
The phantom cases compared are the first downstream cases of the seed with a single clinically
significant transition-zone lesion of at least `MIN_LESION_CC` (the real lesion is a TZ lesion),
rendered on the real case's grid.

Texture and tissue statistics (`texture_stats`, `histogram_distances`), on T2w divided by its
body median, over the slices that hold gland: tissue ratios of the gland, of a periglandular
ring (within `RING_MM` of the gland, in-plane: capsule, venous plexus, fat, levator) and of the
body's 10th and 90th percentiles (dark muscle and vessels, bright fat); the slope of the radially
averaged power spectrum of the whole slice and of a gland-centred patch (log power vs log
cycles/mm over `PSD_BAND`); GLCM contrast (mean squared grey-level difference of voxel pairs 1 mm
apart in-plane, `GLCM_LEVELS` levels over 0-2.5 × the body median) in the gland and the ring; and
Wasserstein-1 distances between a phantom's and the real case's normalised intensity histograms
per region (the real column is then 0).
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
WINDOW_OVER_GLAND_MEDIAN = 2.5
RING_MM = 10.0
PSD_BAND = (0.05, 0.4)        # cycles/mm: above the field of view's scale, below the PSF's
PATCH_MM = 32.0
GLCM_LEVELS = 32
GLCM_RANGE = 2.5              # × body median
TEXTURE_REGIONS = ("gland", "ring", "body")  # T2w and DWI panels: 0 .. 2.5 × the gland median of that image


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


def _normalised_t2w(case: Case) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(T2w / body median, gland slice indices, region masks restricted to those slices)."""
    from scipy.ndimage import binary_dilation

    if case.gland is None or not (case.gland > 0).any():
        raise ValueError(f"case {case.case_id}: texture statistics need a non-empty gland mask")
    t2w = case.sequence("t2w").astype(np.float64)
    body = t2w > np.percentile(t2w[t2w > 0], 5.0)
    t2w = t2w / np.median(t2w[body])
    gland = case.gland > 0
    slices = np.flatnonzero(gland.any(axis=(1, 2)))
    radius = [max(1, int(round(RING_MM / s))) for s in case.spacing_mm[1:]]
    yy, xx = np.ogrid[-radius[0]:radius[0] + 1, -radius[1]:radius[1] + 1]
    disk = ((yy * case.spacing_mm[1]) ** 2 + (xx * case.spacing_mm[2]) ** 2 <= RING_MM**2)[None]
    ring = binary_dilation(gland, disk) & ~gland & body
    keep = np.zeros_like(gland)
    keep[slices] = True
    return t2w, slices, {"gland": gland, "ring": ring & keep, "body": body & keep}


def psd_slope(images: np.ndarray, spacing_yx) -> float:
    """Slope of log radially averaged power vs log spatial frequency (cycles/mm) over PSD_BAND,
    for (N, H, W) images (mean removed, Hann window), power averaged over N."""
    n, h, w = images.shape
    window = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    power = np.zeros((h, w))
    for img in images:
        power += np.abs(np.fft.fft2((img - img.mean()) * window)) ** 2
    fy, fx = np.fft.fftfreq(h, spacing_yx[0]), np.fft.fftfreq(w, spacing_yx[1])
    f = np.hypot(fy[:, None], fx[None, :])
    edges = np.geomspace(PSD_BAND[0], PSD_BAND[1], 13)
    centres, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (f >= lo) & (f < hi)
        if sel.any():
            centres.append(np.sqrt(lo * hi))
            means.append(power[sel].mean())
    return float(np.polyfit(np.log(centres), np.log(np.maximum(means, 1e-30)), 1)[0])


def glcm_contrast(image: np.ndarray, mask: np.ndarray, spacing_yx) -> float:
    """GLCM contrast Σ p(i, j) (i - j)² of in-plane voxel pairs ~1 mm apart (along y and x, both
    inside `mask`), on GLCM_LEVELS grey levels over [0, GLCM_RANGE]: the mean squared level difference."""
    q = np.clip(np.floor(image / GLCM_RANGE * GLCM_LEVELS), 0, GLCM_LEVELS - 1)
    diffs = []
    for axis, s in ((1, spacing_yx[0]), (2, spacing_yx[1])):
        d = max(1, int(round(1.0 / s)))
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, -d), slice(d, None)
        both = mask[tuple(a)] & mask[tuple(b)]
        diffs.append((q[tuple(a)][both] - q[tuple(b)][both]) ** 2)
    diffs = np.concatenate(diffs)
    return float(diffs.mean()) if diffs.size else float("nan")


def texture_stats(case: Case) -> dict[str, float]:
    """Tissue ratios and texture statistics of T2w (see the module doc). Needs a gland mask."""
    t2w, slices, regions = _normalised_t2w(case)
    spacing = case.spacing_mm[1:]
    out = {"t2w_gland_over_body_median": float(np.mean(t2w[regions["gland"]])),
           "t2w_ring_over_body_median": float(np.median(t2w[regions["ring"]])),
           "t2w_body_p10_over_median": float(np.percentile(t2w[regions["body"]], 10.0)),
           "t2w_body_p90_over_median": float(np.percentile(t2w[regions["body"]], 90.0)),
           "psd_slope_slice": psd_slope(t2w[slices], spacing)}
    zc, yc, xc = (int(round(c)) for c in np.argwhere(regions["gland"]).mean(axis=0))
    hy, hx = (int(round(PATCH_MM / 2 / s)) for s in spacing)
    patch = t2w[slices, max(0, yc - hy):yc + hy, max(0, xc - hx):xc + hx]
    out["psd_slope_gland_patch"] = psd_slope(patch, spacing)
    for name in ("gland", "ring"):
        out[f"glcm_contrast_{name}"] = glcm_contrast(t2w, regions[name], spacing)
    return out


def histogram_distances(case: Case, reference: Case) -> dict[str, float]:
    """Wasserstein-1 distance between the normalised T2w values of `case` and `reference`, per region."""
    from scipy.stats import wasserstein_distance

    a, _, ra = _normalised_t2w(case)
    b, _, rb = _normalised_t2w(reference)
    return {f"hist_w1_{name}": float(wasserstein_distance(a[ra[name]], b[rb[name]])) for name in TEXTURE_REGIONS}


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
    stats = [region_stats(case) | texture_stats(case) | histogram_distances(case, real) for case in phantoms]
    real_stats = region_stats(real) | texture_stats(real) | {f"hist_w1_{name}": 0.0 for name in TEXTURE_REGIONS}
    mean = {key: float(np.mean([s[key] for s in stats])) for key in real_stats}
    rows = [(key, stats[0][key], mean[key], real_stats[key], mean[key] - real_stats[key]) for key in real_stats]
    header = ["statistic", phantoms[0].case_id, f"phantom mean of {len(phantoms)}", f"real {real.case_id}",
              "mean - real"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_tables(rows, header, f"Phantom TZ-lesion cases (seed {seed}) vs real `{real.case_id}` on the real grid "
                  f"{real.shape} at {real.spacing_mm} mm: region means, the contrast ratios, then T2w tissue ratios "
                  f"and texture statistics (T2w / body median, slices through the gland) and histogram distances "
                  f"to the real case", out)
    plot_side_by_side([(f"phantom {phantoms[0].case_id}", phantoms[0]), (f"real {real.case_id}", real)],
                      out / "phantom_vs_real.png")
    result: dict = {"phantom_cases": [c.case_id for c in phantoms], "real_case": real.case_id,
                    "png": str(out / "phantom_vs_real.png"), "csv": str(out / "phantom_vs_real.csv"),
                    "md": str(out / "phantom_vs_real.md")}
    result.update({key: (round(mean[key], 3), round(real_stats[key], 3)) for key in RATIOS})
    return result
