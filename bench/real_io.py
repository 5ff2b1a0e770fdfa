"""Real-data throughput: read + resample + normalise, in cases per second, without a cache,
cold (empty cache: computed and stored) and warm (every case from the cache), side by side.

Two folders: the real PI-CAI sample (20 × 256 × 256 uint16, oblique) listed `--n` times in a
manifest (each row its own case id), and `--n` phantom cases exported in the PI-CAI layout on the
same real-like grid (float32 .mha). Each case is resampled onto the quick preset's grid
(16 × 48 × 48 at 3 × 1.5 × 1.5 mm, around the gland) and normalised as profound_conv does
(z-score over non-zero voxels per channel; normalisation is never cached, it is per encoder).

    python bench/real_io.py            # n = 8
    python bench/real_io.py --n 16
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from taskalign.data.real import read_folder
from taskalign.data.real.cache import PreprocessCache
from taskalign.data.real.export import export_phantom
from taskalign.encoders.convnextv2 import create_profound_conv

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "picai_sample"
GRID = dict(crop=(16, 48, 48), spacing_mm=(3.0, 1.5, 1.5))


def sample_manifest(out: Path, n: int) -> Path:
    rows = "".join(f"s{i},{SAMPLE}/t2w.nii.gz,{SAMPLE}/dwi.nii.gz,{SAMPLE}/adc.nii.gz,{SAMPLE}/gland.nii.gz,"
                   f"{SAMPLE}/lesion.nii.gz\n" for i in range(n))
    path = out / "sample_x.csv"
    path.write_text("case_id,t2w,dwi,adc,gland,lesion\n" + rows)
    return path


def rate(path: Path, encoder, cache: PreprocessCache | None) -> tuple[float, int]:
    start = time.perf_counter()
    result = read_folder(path, cache=cache, **GRID)
    for case in result.cases:
        encoder.preprocess(case.image, ("t2w", "dwi", "adc"), case.gland)
    return len(result.cases) / (time.perf_counter() - start), len(result.cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="cases per folder")
    args = parser.parse_args()
    encoder = create_profound_conv("micro")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = {"PI-CAI sample ×n (manifest, uint16 NIfTI)": sample_manifest(tmp, args.n),
                   "phantom, real-like grid (picai, float32 .mha)": export_phantom(
                       tmp / "phantom", args.n, "picai", shape=(20, 256, 256), spacing_mm=(3.0, 0.5, 0.5))}
        print(f"{'folder':48s} {'no cache':>10s} {'cold':>10s} {'warm':>10s} {'warm/no cache':>14s}  (cases/s)")
        for i, (name, path) in enumerate(folders.items()):
            plain, n = rate(path, encoder, None)
            cache = PreprocessCache(tmp / f"cache{i}")
            cold, _ = rate(path, encoder, cache)
            warm, _ = rate(path, encoder, cache)
            print(f"{name:48s} {plain:10.2f} {cold:10.2f} {warm:10.2f} {warm / plain:13.1f}×  (n={n}, "
                  f"{cache.hits} hits)")


if __name__ == "__main__":
    main()
