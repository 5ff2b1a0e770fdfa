"""Labels on the output grid: a voxel gets a label when it covers at least half of it.

Masks are rendered on the sub-slice grid like the images, then averaged over each slice's
sub-slices (the same slice profile as the signal) and thresholded at 0.5, so labels and images
share their partial-volume geometry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskalign.data.phantom.grid import RenderGrid
from taskalign.data.phantom.paint import Painted
from taskalign.data.phantom.tissues import Tissue


@dataclass
class Labels:
    gland: np.ndarray   # (D, H, W) uint8 {0, 1}
    zones: np.ndarray   # (D, H, W) uint8 {0, 1 PZ, 2 TZ}
    lesion: np.ndarray  # (D, H, W) uint8 {0, 1-5 ISUP}
    body: np.ndarray    # (D, H, W) bool
    air: np.ndarray     # (D, H, W) bool, rectal air


def _covers(grid: RenderGrid, mask: np.ndarray) -> np.ndarray:
    return grid.to_slices(mask.astype(np.float32)) >= 0.5


def output_labels(grid: RenderGrid, painted: Painted, grade: np.ndarray) -> Labels:
    """Render-grid masks -> output-grid labels. `grade` is the render-grid ISUP map."""
    gland = _covers(grid, painted.gland)
    tz = grid.to_slices((painted.zones == 2).astype(np.float32))
    pz = grid.to_slices((painted.zones == 1).astype(np.float32))
    zones = np.where(gland, np.where(tz > pz, 2, 1), 0).astype(np.uint8)
    lesion = np.zeros(grid.shape, dtype=np.uint8)
    for g in range(1, int(grade.max(initial=0)) + 1):  # grades are nested: >= g covers >= g + 1
        lesion += _covers(grid, grade >= g).astype(np.uint8)
    lesion *= gland.astype(np.uint8)
    body = _covers(grid, (painted.tissue != Tissue.AIR) & ~painted.gas)
    return Labels(gland.astype(np.uint8), zones, lesion, body, _covers(grid, painted.gas))
