"""Tissue classes of the pelvis and their MR properties at 3 T.

Each class carries proton density (relative), T1 and T2 (ms), the apparent diffusion coefficient
(10⁻⁶ mm²/s, the unit of PI-CAI ADC maps), its fat fraction (removed by fat saturation on DWI)
and the amplitude of its texture (fractional variation of T2 and ADC within the tissue).
Values are typical literature figures for 3 T prostate MRI; the source of each range is in the
`SOURCES` table below (the numbers, not the wording, come from the papers). Fat's T2 is the long
effective T2 it shows on fast spin echo (J-coupling), which is why fat is bright on clinical
T2w. Lesions, nodules and other focal findings are not classes: they carry their own values
(see `lesions.py`). Where the table's value sits outside the cited range, the reason is given.
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
    VEIN = 19          # slow-flow veins: periprostatic plexus, neurovascular bundles, pelvic sidewall
    FLOW_VOID = 20     # arteries: fast flow leaves the slice before the echo (dark on T2w and DWI)


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
    Tissue.VEIN:         (0.90, 1900, 250, 1800, 0.0, 0.10, 0.10),
    Tissue.FLOW_VOID:    (0.05, 1900,  20,    0, 0.0, 0.00, 0.00),
}

# Published ranges at 3 T behind the table (T1, T2 in ms; ADC in 10⁻⁶ mm²/s):
# [S05] Stanisz et al., Magn Reson Med 2005;54:507-512 (in vivo/ex vivo 3 T relaxometry).
# [G04] Gold et al., AJR 2004;183:343-351 (musculoskeletal tissues in vivo at 3 T).
# [dB04] de Bazelaire et al., Radiology 2004;230:652-659 (abdominal and pelvic tissues at 3 T).
# [T08] Tamada et al., J Magn Reson Imaging 2008;28:720-726 (prostate ADC by zone, with cancer).
# [H11] Hambrock et al., Radiology 2011;259:453-461 (ADC of PZ cancer vs Gleason grade).
# [M73] Mills, J Phys Chem 1973;77:685-688 (self-diffusion of water: about 3000 at 37 °C).
SOURCES = {
    Tissue.FAT: "T1 ~370-380 [G04, dB04]; intrinsic T2 ~70-130 [G04, dB04], longer effective T2 on FSE "
                "(J-coupling), set to 300 to match the real sample's fat/gland ratio; ADC ~0 (fat-saturated)",
    Tissue.MUSCLE: "T1 ~900-1420, T2 ~30-50 [G04, S05, dB04]; ADC ~1400-1600 (commonly reported; no single source here)",
    Tissue.MARROW: "fatty marrow: T1 ~370-550, T2 ~130-170 (FSE) [G04]",
    Tissue.CARTILAGE: "T1 ~1200-1240, T2 ~35-40 [S05, G04]",
    Tissue.URINE: "T2 > 1000 (near water), ADC ~2800-3000 [M73]",
    Tissue.PZ: "whole gland T1 ~1600, T2 ~75 [dB04]; the normal PZ is the gland's long-T2 part (T2 on the order "
               "of 150-200, set from the real sample's gland contrast, no single source here); ADC ~1600-2000 [T08]",
    Tissue.TZ: "T2 ~90-110; ADC ~1100-1400 [T08]",
    Tissue.VEIN: "blood T1 ~1930, T2 ~275 [S05]; slow flow keeps the signal",
    Tissue.FLOW_VOID: "arterial flow: signal lost (no relaxation value applies)",
}

PROPERTIES = ("pd", "t1_ms", "t2_ms", "adc", "fat", "tex_t2", "tex_adc")
PROPERTY_TABLE = np.array([_TABLE[t] for t in Tissue], dtype=np.float32)  # (n_tissues, 7), row = Tissue value
