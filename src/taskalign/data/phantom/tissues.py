"""Tissue classes of the pelvis and their MR properties at 3 T.

Each class carries proton density (relative), T1 and T2 (ms), the apparent diffusion coefficient
(10⁻⁶ mm²/s, the unit of PI-CAI ADC maps), its fat fraction (removed by fat saturation on DWI)
and the amplitude of its texture (fractional variation of T2 and ADC within the tissue).
Values are typical literature figures for 3 T prostate MRI (e.g. normal peripheral zone T2 about
150-200 ms and ADC 1600-2000, transition zone T2 about 90-110 ms and ADC 1100-1400, skeletal
muscle T2 about 40 ms, urine T2 over 1 s); fat's T2 is the long effective T2 it shows on fast
spin echo (J-coupling), which is why fat is bright on clinical T2w. Lesions, nodules and other
focal findings are not classes: they carry their own values (see `lesions.py`).
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    AIR = 0            # outside the body
    FAT = 1
    MUSCLE = 2
    SEPTUM = 3         # fibrous septa and small vessels crossing fat
    CORTEX = 4         # cortical bone
    MARROW = 5         # fatty bone marrow
    CARTILAGE = 6      # pubic symphysis
    BLADDER_WALL = 7
    URINE = 8
    RECTAL_WALL = 9    # muscularis propria
    MUCOSA = 10
    GAS = 11           # rectal air
    STOOL = 12
    VESICLE = 13       # seminal vesicle fluid
    CAPSULE = 14
    PZ = 15
    TZ = 16
    AFMS = 17          # anterior fibromuscular stroma
    URETHRA = 18


# columns: proton density, T1 ms, T2 ms, ADC 1e-6 mm²/s, fat fraction, texture amplitude T2, texture amplitude ADC
_TABLE = {
    Tissue.AIR:          (0.00, 1000, 1.0,    0, 0.0, 0.00, 0.00),
    Tissue.FAT:          (1.00,  380, 300,   30, 1.0, 0.08, 0.00),
    Tissue.MUSCLE:       (0.75, 1400,  40, 1450, 0.0, 0.15, 0.05),
    Tissue.SEPTUM:       (0.60, 1200,  35, 1400, 0.0, 0.05, 0.05),
    Tissue.CORTEX:       (0.05, 1000,   1,    0, 0.0, 0.00, 0.00),
    Tissue.MARROW:       (0.90,  500, 170,  600, 0.9, 0.12, 0.10),
    Tissue.CARTILAGE:    (0.60, 1200,  35, 1200, 0.0, 0.05, 0.05),
    Tissue.BLADDER_WALL: (0.75, 1400,  50, 1500, 0.0, 0.05, 0.05),
    Tissue.URINE:        (1.00, 3000, 1200, 2900, 0.0, 0.00, 0.02),
    Tissue.RECTAL_WALL:  (0.75, 1400,  45, 1400, 0.0, 0.08, 0.05),
    Tissue.MUCOSA:       (0.85, 1500, 100, 1200, 0.0, 0.10, 0.08),
    Tissue.GAS:          (0.00, 1000,   1,    0, 0.0, 0.00, 0.00),
    Tissue.STOOL:        (0.70, 1000,  80, 1000, 0.0, 0.25, 0.20),
    Tissue.VESICLE:      (0.95, 2500, 300, 2000, 0.0, 0.10, 0.08),
    Tissue.CAPSULE:      (0.70, 1300,  65, 1300, 0.0, 0.05, 0.05),
    Tissue.PZ:           (0.90, 1700, 180, 1700, 0.0, 0.22, 0.08),
    Tissue.TZ:           (0.85, 1600, 100, 1150, 0.0, 0.35, 0.10),
    Tissue.AFMS:         (0.75, 1400,  55, 1150, 0.0, 0.08, 0.05),
    Tissue.URETHRA:      (0.85, 1800, 150, 1600, 0.0, 0.05, 0.05),
}

PROPERTIES = ("pd", "t1_ms", "t2_ms", "adc", "fat", "tex_t2", "tex_adc")
PROPERTY_TABLE = np.array([_TABLE[t] for t in Tissue], dtype=np.float32)  # (n_tissues, 7), row = Tissue value
