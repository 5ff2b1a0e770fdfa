"""Worked example: bring your own data source into the study.

    python docs/examples/custom_source.py runs/custom_source   # smoke-size study on the new source

A data source is a function registered by name that returns `Case`s (or a `SourceRead`: cases,
the excluded ones with their reason, notes). The study calls the source named by
`DataConfig.source` with those of its arguments it asks for (`n`, `seed`, `shape`, `spacing_mm`,
`path`, ...; see `taskalign.data.sources.STUDY_ARGUMENTS`) and uses what it returns as the
downstream cohort: split, tasks, fine-tuning, alignment and report are the same as for the
phantom or a real folder. The pretraining cohort and the reference probe set stay phantom.

The source below stands for "another scanner": the phantom's anatomy and lesions, but T2w at
half the signal-to-noise ratio and a 20 % brighter ADC, with one case the scanner lost.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from taskalign.data import create_source, register_source
from taskalign.data.sources import SourceRead


@register_source("noisy_scanner")
def noisy_scanner(n: int, seed: int, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> SourceRead:
    """`n` phantom cases as another scanner would see them (see the module doc)."""
    rng = np.random.default_rng(seed + 1)
    cases = []
    for case in create_source("phantom", n=n, seed=seed, cohort="downstream", shape=shape, spacing_mm=spacing_mm):
        image = case.image.copy()                               # (C, D, H, W): T2w, DWI, ADC
        t2w = image[0]
        image[0] = np.abs(t2w + rng.normal(0.0, 0.1 * float(t2w.std()), t2w.shape)).astype(np.float32)
        image[2] *= 1.2
        cases.append(dataclasses.replace(case, image=image, meta={**case.meta, "site": "noisy_scanner"}))
    lost = cases.pop()                                          # a case the source reports instead of returning
    return SourceRead(cases, excluded=[{"case": lost.case_id, "reason": "not transferred from the scanner"}],
                      notes=["downstream cases from the noisy_scanner source (phantom anatomy, half the T2w SNR)"])


def study_config(tasks: tuple[str, ...] = ("segmentation",), encoders: tuple[str, ...] = ("profound_conv",)):
    """A smoke-size study whose downstream cases come from `noisy_scanner`."""
    from taskalign.study.config import preset

    cfg = preset("smoke", tasks=tasks, encoders=encoders)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="noisy_scanner"))


def main(out: str) -> None:
    from taskalign.study.runner import run_study

    print(run_study(study_config(), Path(out)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/custom_source")

