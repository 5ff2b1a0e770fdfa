"""`taskalign experiment transfer-matrix`: sources (ways to pretrain one architecture) × target
tasks, fine-tuned with the study's loop, heads, metrics and D2x (docs/transfer_matrix.md).

    config.py    MatrixConfig, the presets and the source names
    sources.py   making each source's start weights (none, self-supervised doses, supervised, shipped)
    units.py     the work units, their folders and `run_matrix` (resumable, local backend)
    analysis.py  matrices of gain, RPG and D2P; within-target correlations; diagonal; doses; early D2P
"""
from taskalign.experiments.transfer_matrix.config import MATRIX_PRESETS, MatrixConfig, matrix_preset
from taskalign.experiments.transfer_matrix.units import run_matrix

__all__ = ["MatrixConfig", "MATRIX_PRESETS", "matrix_preset", "run_matrix"]
