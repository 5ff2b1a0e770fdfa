"""Does a prostate segmentation network trained on real MRI, that we did not write, find the
phantom's gland? Dice on phantom cases (exported on the real PI-CAI grid) beside its Dice on the
real sample.

The network is TAPS (PyPI `lavlab-taps`, MIT licence: a MONAI SegResNetDS trained on real T2w
prostate MRI, its weights shipped inside the wheel as `taps/resources/model_v1.onnx`, ~80 MB).
It is not a dependency of taskalign: install the `realism` extra into a separate environment,

    python -m venv /tmp/venv-realism && /tmp/venv-realism/bin/pip install -e '.[realism]'
    /tmp/venv-realism/bin/python bench/independent_seg.py --n 3

TAPS reads a T2w NIfTI, resamples it to 0.8 × 0.8 × 3 mm (RAS), z-normalises over non-zero
voxels, runs a sliding window and writes a mask on the input grid; a blank prediction raises
(Dice 0 here). Phantom cases are downstream cases 0..n-1 of `--seed`, rendered on the real
case's grid (shape and spacing) and written with `taskalign.data.real.export.write_volume`.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

REAL_CSV = Path(__file__).resolve().parents[1] / "../shared/data/real/picai_sample/cases.csv"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1 when both are empty."""
    a, b = a > 0, b > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def swap_context(t2w: np.ndarray, gland: np.ndarray, real_t2w: np.ndarray, spacing_mm, context: str,
                 reach_mm: float = 15.0) -> np.ndarray:
    """The phantom's T2w with its surroundings near the gland (or far from it) taken from the real case."""
    if context == "phantom":
        return t2w
    from scipy import ndimage

    scale = np.median(t2w[t2w > 0]) / np.median(real_t2w[real_t2w > 0])
    dist = ndimage.distance_transform_edt(~gland, sampling=spacing_mm)
    swap = (dist > 0) & (dist < reach_mm) if context == "real-near" else dist >= reach_mm
    return np.where(swap, real_t2w * scale, t2w).astype(np.float32)


def taps_mask(t2w_path: Path, out_dir: Path) -> np.ndarray | None:
    """TAPS's mask on the input grid as (D, H, W), or None when it finds nothing."""
    import SimpleITK as sitk
    from taps.inference import BlankMaskError, segment

    try:
        path = segment(t2w_path, out_dir / f"{t2w_path.parent.name}_taps.nii.gz", None, device="cpu", exact=True)
    except BlankMaskError:
        return None
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # (z, y, x) like the case arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL_CSV, help="manifest CSV of the real case")
    parser.add_argument("--n", type=int, default=3, help="phantom cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oblique-deg", type=float, default=0.0,
                        help="tilt of the phantom's slices about the left-right axis (0: axial)")
    parser.add_argument("--context", choices=("phantom", "real-near", "real-far"), default="phantom",
                        help="diagnosis: replace the phantom's T2w within 15 mm of its gland (real-near) or beyond "
                             "(real-far) by the real case's, scaled to the phantom's body median")
    parser.add_argument("--out", type=Path, default=None, help="keep the exported cases and masks here")
    args = parser.parse_args()
    logging.getLogger("taps.inference").setLevel(logging.ERROR)

    from taskalign.data.manifest import read_manifest
    from taskalign.data.phantom import phantom_case
    from taskalign.data.real.export import write_volume

    out = args.out or Path(tempfile.mkdtemp(prefix="independent_seg_"))
    real = read_manifest(str(args.real))[0]
    rows = []
    real_dir = out / real.case_id
    write_volume(np.ascontiguousarray(real.sequence("t2w"), np.float32), real, real_dir / "t2w.nii.gz")
    pred = taps_mask(real_dir / "t2w.nii.gz", out)
    rows.append((f"real {real.case_id}", pred, real.gland))
    extra = {"oblique_deg": args.oblique_deg} if args.oblique_deg else {}
    for i in range(args.n):
        case = phantom_case(i, args.seed, "downstream", shape=real.shape, spacing_mm=real.spacing_mm, **extra)
        case_dir = out / case.case_id
        t2w = swap_context(np.array(case.sequence("t2w"), np.float32), case.gland > 0,
                           np.asarray(real.sequence("t2w"), np.float32), real.spacing_mm, args.context)
        write_volume(t2w, case, case_dir / "t2w.nii.gz")
        rows.append((f"phantom {case.case_id}", taps_mask(case_dir / "t2w.nii.gz", out), case.gland))
    voxel_cc = float(np.prod(real.spacing_mm)) / 1000.0
    print(f"TAPS (lavlab-taps) on the real grid {real.shape} at {real.spacing_mm} mm; files under {out}")
    print(f"{'case':36s} {'Dice':>6s} {'pred cc':>8s} {'gland cc':>9s}")
    scores = []
    for name, pred, gland in rows:
        d = 0.0 if pred is None else dice(pred, gland)
        scores.append(d)
        pred_cc = 0.0 if pred is None else float((pred > 0).sum()) * voxel_cc
        print(f"{name:36s} {d:6.3f} {pred_cc:8.1f} {float((gland > 0).sum()) * voxel_cc:9.1f}")
    print(f"{'phantom mean':36s} {float(np.mean(scores[1:])):6.3f}")


if __name__ == "__main__":
    main()
