"""2.5D slices for ProViCNet's pretraining: a bank of preprocessed volumes from which (sequence,
slice) triplets z-1, z, z+1 are drawn, with lesion classes when the cases carry masks."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from taskalign.data.case import SEQUENCES, Case
from taskalign.pretrain.cohort import LazySequence


@dataclass
class SliceBatch:
    images: torch.Tensor          # (N, 3, H, W): slices z-1, z, z+1 of one sequence
    slice_index: torch.Tensor     # (N,) float, raw z
    slice_count: torch.Tensor     # (N,) float, D
    sequence_index: torch.Tensor  # (N,) long, index into SEQUENCES
    labels: torch.Tensor | None = None  # (N, H, W) long, class of slice z

    def to(self, device: torch.device) -> "SliceBatch":
        moved = {k: (v.to(device) if v is not None else None) for k, v in self.__dict__.items()}
        return SliceBatch(**moved)


class SliceBank:
    """Preprocessed volumes (C_enc, D, H, W) of a cohort from which 2.5D slices are drawn; with
    `labels` (D, H, W) per volume (classes of `patch_contrast.lesion_classes`, 3 = csPCa).
    `volumes` and `labels` may be lazy sequences (`taskalign.pretrain.cohort`)."""

    def __init__(self, volumes: Sequence[torch.Tensor], sequence_index: torch.Tensor,
                 labels: Sequence[torch.Tensor] | None = None) -> None:
        if not len(volumes):
            raise ValueError("SliceBank: no volumes to draw slices from; pass at least one case")
        self.volumes, self.labels, self.sequence_index = volumes, labels, sequence_index.cpu()
        self.slice_size = tuple(volumes[0].shape[-2:])
        self._lesion_slices: dict[int, torch.Tensor] = {}

    @classmethod
    def from_cases(cls, encoder, cases: Sequence[Case]) -> "SliceBank":
        """Unlabelled bank: every case through the encoder's own preprocessing (on first draw)."""
        volumes = LazySequence(len(cases), lambda i: torch.from_numpy(
            encoder.preprocess(cases[i].image, SEQUENCES, cases[i].gland)))
        return cls(volumes, encoder.sequence_indices())

    def volume(self, v: int) -> torch.Tensor:
        volume = self.volumes[v]
        if tuple(volume.shape[-2:]) != self.slice_size:
            raise ValueError(f"SliceBank: volume {v} has slice size {tuple(volume.shape[-2:])}, the first has "
                             f"{self.slice_size}; crop the cohort to one in-plane size")
        return volume

    def lesion_slices(self, v: int) -> torch.Tensor:
        if v not in self._lesion_slices:
            self._lesion_slices[v] = torch.nonzero((self.labels[v] == 3).flatten(1).any(1)).flatten()
        return self._lesion_slices[v]

    def _pick_slice(self, v: int, depth: int, generator: torch.Generator, lesion_slice_prob: float) -> int:
        z = int(torch.randint(depth, (1,), generator=generator))
        if self.labels is None or not self.lesion_slices(v).numel():
            return z
        if float(torch.rand(1, generator=generator)) < lesion_slice_prob:
            lesion = self.lesion_slices(v)
            z = int(lesion[torch.randint(lesion.numel(), (1,), generator=generator)])
        return z

    def draw(self, num_volumes: int, slices_per_volume: int, generator: torch.Generator,
             lesion_slice_prob: float = 0.0) -> SliceBatch:
        """`num_volumes` random volumes × `slices_per_volume` random (sequence, slice) pairs each.
        With labels, a slice is drawn among the csPCa slices with probability `lesion_slice_prob`."""
        images, index, count, seq, labels = [], [], [], [], []
        for v in torch.randint(len(self.volumes), (num_volumes,), generator=generator).tolist():
            volume = self.volume(v)
            n_seq, depth = volume.shape[:2]
            for _ in range(slices_per_volume):
                c = int(torch.randint(n_seq, (1,), generator=generator))
                z = self._pick_slice(v, depth, generator, lesion_slice_prob)
                neighbours = torch.tensor([max(z - 1, 0), z, min(z + 1, depth - 1)])
                images.append(volume[c, neighbours])  # (3, H, W)
                index.append(float(z))
                count.append(float(depth))
                seq.append(int(self.sequence_index[c]))
                if self.labels is not None:
                    labels.append(self.labels[v][z])
        return SliceBatch(torch.stack(images), torch.tensor(index), torch.tensor(count), torch.tensor(seq),
                          torch.stack(labels).long() if labels else None)
