"""Stage 1 of ProViCNet pretraining, DINO self-distillation on unlabelled 2.5D slices, and the
registered two-stage `pretrain_provicnet` (stage 1, then `patch_contrast`'s stage 2).

ProViCNet starts from DINOv2 weights; in-house, this stage plays that part (Caron et al. 2021):

    views    2 global crops (random resized crop within the slice, flip, intensity scale / shift /
             gamma, noise) at the slice size, plus `n_local_views` small crops
    student  encoder cls token -> ProjectionHead -> K prototype scores, on every view
    teacher  EMA of the student (momentum cosine from `teacher_momentum` to 1), global views only
    loss     cross-entropy H(softmax((t - center) / τt), softmax(s / τs)) averaged over pairs of
             different views; the center is an EMA of the teacher's batch mean, started at the
             first batch's mean (centering and sharpening keep the teacher from collapsing),
             plus 0.1 × DINOv2's KoLeo term on the student's global-view cls tokens: without it,
             runs of ~100 steps on a dozen cases collapse to one output for every slice

The encoder ends with the student's weights (`keep="student"`) by default: in runs of a few
hundred steps the EMA teacher still carries much of its random initialisation. `keep="teacher"`
copies the teacher in, as DINO's released weights are teacher weights.
"""
from __future__ import annotations

import copy
import math
import random
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders.base import register_pretrainer
from taskalign.encoders.provicnet import ProViCNetEncoder
from taskalign.pretrain.provicnet_heads import ProjectionHead
from taskalign.train.schedule import cosine_schedule  # noqa: F401  (re-exported for pretraining stages)

if TYPE_CHECKING:
    from taskalign.pretrain.patch_contrast import PatchContrastConfig

Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class DinoConfig:
    out_dim: int = 256                  # K prototypes
    hidden_dim: int = 256
    bottleneck_dim: int = 64
    n_local_views: int = 2
    global_scale: tuple[float, float] = (0.4, 1.0)   # crop area fraction (DINOv2: 0.32-1)
    local_scale: tuple[float, float] = (0.1, 0.4)    # (DINOv2: 0.05-0.32)
    teacher_temp: float = 0.04
    student_temp: float = 0.1
    center_momentum: float = 0.9
    teacher_momentum: float = 0.99      # cosine schedule to 1 over the stage
    weight_decay: float = 0.04
    clip_grad: float = 3.0
    warmup_fraction: float = 0.1
    freeze_last_layer_fraction: float = 0.05   # DINO freezes the prototypes during its first epoch
    centering: str = "ema"              # "ema" (DINO) or "sinkhorn" (DINOv2)
    koleo_weight: float = 0.1           # DINOv2's KoLeo regulariser on the student's cls tokens
    slices_per_volume: int = 4
    keep: str = "student"


def dino_config(preset: str) -> DinoConfig:
    """Stage-1 settings per encoder size. paper: DINOv2's head (65536 prototypes), 8 local views,
    teacher momentum 0.992. CPU presets run a few hundred steps, where a 0.99 teacher would still be
    mostly its random start: micro uses momentum 0.9 and a faster center (0.5), with which the
    teacher's outputs turn sharp and input-specific within ~100 steps on small cohorts."""
    if preset == "paper":
        return DinoConfig(out_dim=65536, hidden_dim=2048, bottleneck_dim=256, n_local_views=8, teacher_momentum=0.992)
    if preset == "tiny":
        return DinoConfig(out_dim=1024, hidden_dim=512, bottleneck_dim=128, n_local_views=4,
                          teacher_momentum=0.98, center_momentum=0.8)
    return DinoConfig(teacher_momentum=0.9, center_momentum=0.5)


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
    `labels` (D, H, W) per volume (classes of `patch_contrast.lesion_classes`, 3 = csPCa)."""

    def __init__(self, volumes: list[torch.Tensor], sequence_index: torch.Tensor,
                 labels: list[torch.Tensor] | None = None) -> None:
        if not volumes:
            raise ValueError("SliceBank: no volumes to draw slices from; pass at least one case")
        sizes = {tuple(v.shape[-2:]) for v in volumes}
        if len(sizes) > 1:
            raise ValueError(f"SliceBank: cases differ in slice size {sorted(sizes)}; "
                             f"crop the cohort to one in-plane size")
        self.volumes, self.labels, self.sequence_index = volumes, labels, sequence_index.cpu()
        self.lesion_slices = [torch.nonzero((lab == 3).flatten(1).any(1)).flatten() for lab in labels or []]

    @classmethod
    def from_cases(cls, encoder, cases: list[Case]) -> "SliceBank":
        """Unlabelled bank: every case through the encoder's own preprocessing."""
        volumes = [torch.from_numpy(encoder.preprocess(c.image, SEQUENCES, c.gland)) for c in cases]
        return cls(volumes, encoder.sequence_indices())

    def _pick_slice(self, v: int, depth: int, generator: torch.Generator, lesion_slice_prob: float) -> int:
        z = int(torch.randint(depth, (1,), generator=generator))
        if self.labels is None or not self.lesion_slices[v].numel():
            return z
        if float(torch.rand(1, generator=generator)) < lesion_slice_prob:
            lesion = self.lesion_slices[v]
            z = int(lesion[torch.randint(lesion.numel(), (1,), generator=generator)])
        return z

    def draw(self, num_volumes: int, slices_per_volume: int, generator: torch.Generator,
             lesion_slice_prob: float = 0.0) -> SliceBatch:
        """`num_volumes` random volumes × `slices_per_volume` random (sequence, slice) pairs each.
        With labels, a slice is drawn among the csPCa slices with probability `lesion_slice_prob`."""
        images, index, count, seq, labels = [], [], [], [], []
        for v in torch.randint(len(self.volumes), (num_volumes,), generator=generator).tolist():
            volume = self.volumes[v]
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


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_resized_crop(images: torch.Tensor, out_size: int, scale: tuple[float, float],
                        generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, out, out): a crop of `scale` area fraction and aspect ratio 3/4-4/3
    inside each slice, resized bilinearly, mirrored left-right with probability 1/2."""
    n = images.shape[0]
    ratio = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), generator))
    area = _uniform(n, *scale, generator)
    w, h = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # fractions of the side
    cx, cy = _uniform(n, -1, 1, generator) * (1 - w), _uniform(n, -1, 1, generator) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta.to(images), [n, images.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def intensity_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) z-scored slices -> jittered: gamma (p 0.5, γ 0.7-1.4 on the slice's own
    range), scale 0.8-1.2 and shift ±0.2 (p 0.8), Gaussian noise σ ≤ 0.1 (p 0.5); per sample."""
    n = x.shape[0]

    def per_sample(values: torch.Tensor, p: float, neutral: float) -> torch.Tensor:
        keep = torch.rand(n, generator=generator) < p
        return torch.where(keep, values, torch.full_like(values, neutral)).to(x).view(n, 1, 1, 1)

    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    span = (hi - lo).clamp(min=1e-6)
    gamma = per_sample(torch.exp(_uniform(n, math.log(0.7), math.log(1.4), generator)), 0.5, 1.0)
    x = ((x - lo) / span).clamp(0, 1) ** gamma * span + lo
    scale = per_sample(_uniform(n, 0.8, 1.2, generator), 0.8, 1.0)
    x = x * scale + per_sample(_uniform(n, -0.2, 0.2, generator), 0.8, 0.0)
    sigma = per_sample(_uniform(n, 0.0, 0.1, generator), 0.5, 0.0)
    return x + sigma * torch.randn(x.shape, generator=generator).to(x)


def local_view_size(slice_size: int, patch_size: int) -> int:
    """Side of a local view: 7/16 of the global patch grid (DINOv2: 98 px for 224 px), >= 2 patches."""
    return patch_size * max(2, round(slice_size // patch_size * 7 / 16))


class DinoNetwork(nn.Module):
    """Encoder + projection head on the cls token of 2.5D slices."""

    def __init__(self, encoder: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, views: torch.Tensor, batch: SliceBatch, n_views: int) -> tuple[torch.Tensor, torch.Tensor]:
        """views (V·N, 3, h, w), view-major -> cls tokens (V·N, E), prototype scores (V·N, K)."""
        index, count, seq = (t.repeat(n_views) for t in (batch.slice_index, batch.slice_count, batch.sequence_index))
        out = self.encoder.encode_slices(views, index, count, seq)
        return out["cls"], self.head(out["cls"])


def sinkhorn_knopp(scores: torch.Tensor, temp: float, n_iter: int = 3) -> torch.Tensor:
    """(B, K) teacher scores -> (B, K) targets whose rows sum to 1 and whose columns share the mass
    equally (DINOv2's Sinkhorn-Knopp centering, from SwAV)."""
    q = torch.exp((scores.float() - scores.float().max()) / temp).t()  # (K, B)
    q = q / q.sum()
    k, b = q.shape
    for _ in range(n_iter):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b
    return (q * b).t()


def teacher_targets(teacher: torch.Tensor, center: torch.Tensor, temp: float, centering: str) -> torch.Tensor:
    """(B, K) scores -> (B, K) targets: softmax((t - center) / τt), or Sinkhorn-Knopp."""
    if centering == "sinkhorn":
        return sinkhorn_knopp(teacher, temp)
    return F.softmax((teacher.float() - center) / temp, dim=-1)


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, n_global: int,
              teacher_temp: float, student_temp: float, centering: str = "ema") -> torch.Tensor:
    """student (V·N, K) over V views, teacher (G·N, K) over the first G of them (view-major) ->
    mean over pairs i != j of -Σ_k p_t,i(k) log p_s,j(k), with p_t = softmax((t - center) / τt)."""
    n = teacher.shape[0] // n_global
    t_probs = teacher_targets(teacher, center, teacher_temp, centering).chunk(n_global)
    s_logp = F.log_softmax(student.float() / student_temp, dim=-1).chunk(student.shape[0] // n)
    terms = [(-p * logq).sum(-1).mean() for i, p in enumerate(t_probs) for j, logq in enumerate(s_logp) if i != j]
    return torch.stack(terms).mean()


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, E) -> -mean_i log(min_{j != i} ‖x_i - x_j‖) of the L2-normalised rows (Kozachenko-Leonenko
    entropy estimator; DINOv2 adds it on the student's cls tokens to spread them out)."""
    x = F.normalize(features.float(), dim=-1)
    dist = torch.cdist(x, x) + torch.eye(x.shape[0], device=x.device) * 4.0  # 4 > any distance of unit vectors
    return -torch.log(dist.min(dim=1).values + eps).mean()


def teacher_probabilities(network: DinoNetwork, batch: SliceBatch, center: torch.Tensor,
                          teacher_temp: float) -> torch.Tensor:
    """(N, K) centred, sharpened teacher distributions of un-augmented slices (for collapse checks)."""
    with torch.no_grad():
        return F.softmax((network(batch.images, batch, 1)[1].float() - center) / teacher_temp, dim=-1)


def collapse_metrics(probs: torch.Tensor) -> dict[str, float]:
    """(N, K) distributions -> mean entropy per sample (≈ log K when uniform), entropy of the mean
    distribution (≈ 0 when every sample picks the same prototype), distinct argmax count, log K."""
    ent = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
    return {"entropy": float(ent(probs).mean()), "entropy_of_mean": float(ent(probs.mean(0))),
            "distinct_argmax": int(probs.argmax(-1).unique().numel()), "log_k": math.log(probs.shape[-1])}


@dataclass
class DinoOutcome:
    losses: list[float]
    teacher: DinoNetwork
    center: torch.Tensor


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only, not on biases, norms, LayerScale or tokens."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and p.shape[0] != 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def check_finite(loss: torch.Tensor, stage: str, step: int) -> float:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"provicnet pretraining, {stage}: loss is {value} at step {step}; lower the learning rate "
            f"or check the cohort for NaN/Inf voxels"
        )
    return value


def dino_views(batch: SliceBatch, size: int, local_size: int, cfg: DinoConfig,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> 2 global views (2N, 3, size, size) and n_local local views (n_local·N, 3, l, l), view-major."""
    def views(n: int, out: int, scale: tuple[float, float]) -> torch.Tensor:
        return torch.cat([intensity_jitter(random_resized_crop(batch.images, out, scale, generator), generator)
                          for _ in range(n)])

    local = views(cfg.n_local_views, local_size, cfg.local_scale) if cfg.n_local_views else None
    return views(2, size, cfg.global_scale), local


def dino_step_loss(student: DinoNetwork, teacher: DinoNetwork, batch: SliceBatch, glob: torch.Tensor,
                   local: torch.Tensor | None, center: torch.Tensor,
                   cfg: DinoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """DINO cross-entropy + koleo_weight × KoLeo of one batch -> (loss, teacher scores (2N, K))."""
    cls, scores = student(glob, batch, 2)
    if local is not None:
        scores = torch.cat([scores, student(local, batch, cfg.n_local_views)[1]])
    with torch.no_grad():
        t_scores = teacher(glob, batch, 2)[1]
    loss = dino_loss(scores, t_scores, center, 2, cfg.teacher_temp, cfg.student_temp, cfg.centering)
    if cfg.koleo_weight:
        loss = loss + cfg.koleo_weight * torch.stack([koleo_loss(c) for c in cls.chunk(2)]).mean()
    return loss, t_scores


def train_dino(encoder: nn.Module, bank: SliceBank, steps: int, batch_size: int, lr: float,
               generator: torch.Generator, cfg: DinoConfig, progress: Progress | None = None,
               step_offset: int = 0) -> DinoOutcome:
    """Run `steps` DINO steps on `batch_size` volumes × `cfg.slices_per_volume` slices each;
    trains `encoder` in place and returns the per-step losses and the EMA teacher."""
    device = next(encoder.parameters()).device
    head = ProjectionHead(encoder.embed_dim, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim).to(device)
    student = DinoNetwork(encoder, head)
    teacher = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(param_groups(student, cfg.weight_decay), lr=lr)
    size = bank.volumes[0].shape[-1]
    local_size = local_view_size(size, encoder.patch_size)
    warmup, freeze_steps = int(cfg.warmup_fraction * steps), int(cfg.freeze_last_layer_fraction * steps)
    center, losses = None, []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_schedule(step, steps, lr, 0.01 * lr, warmup)
        batch = bank.draw(batch_size, cfg.slices_per_volume, generator)
        glob, local = dino_views(batch, size, local_size, cfg, generator)
        batch, glob, local = batch.to(device), glob.to(device), local.to(device) if local is not None else None
        if center is None:  # start from the teacher's own mean, so step 0 has no shared constant target
            with torch.no_grad():
                center = teacher(glob, batch, 2)[1].float().mean(0)
        loss, t_scores = dino_step_loss(student, teacher, batch, glob, local, center, cfg)
        losses.append(check_finite(loss, "stage 1 (DINO)", step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), cfg.clip_grad)
        if step < freeze_steps:
            student.head.last_layer.weight_v.grad = None
        optimizer.step()
        with torch.no_grad():
            m = cosine_schedule(step, steps, cfg.teacher_momentum, 1.0)
            for p_s, p_t in zip(student.parameters(), teacher.parameters()):
                p_t.mul_(m).add_(p_s.detach(), alpha=1 - m)
            center.mul_(cfg.center_momentum).add_(t_scores.float().mean(0), alpha=1 - cfg.center_momentum)
        if progress is not None:
            progress(step_offset + step, losses[-1])
    if cfg.keep == "teacher":
        encoder.load_state_dict(teacher.encoder.state_dict())
    return DinoOutcome(losses, teacher, center if center is not None else torch.zeros(cfg.out_dim, device=device))


@register_pretrainer("provicnet")
def pretrain_provicnet(encoder: ProViCNetEncoder, cases: list[Case], steps: int, batch_size: int, lr: float,
                       seed: int, progress: Progress | None = None, stage1_fraction: float = 0.7,
                       dino: DinoConfig | None = None, contrast: PatchContrastConfig | None = None) -> list[float]:
    """ProViCNet's two stages on `cases`: DINO for round(stage1_fraction · steps) steps, then patch
    contrast on the cases with a lesion mask. `batch_size` volumes per step, 4 slices each.
    Trains `encoder` in place; returns the loss of every step (stage 1, then stage 2)."""
    if not isinstance(encoder, ProViCNetEncoder):
        raise ValueError(f"provicnet pretraining needs a ProViCNetEncoder, got {type(encoder).__name__}")
    if not cases or steps < 1 or batch_size < 1 or not lr > 0 or not 0.0 <= stage1_fraction <= 1.0:
        raise ValueError(f"provicnet pretraining: need cases, steps >= 1, batch_size >= 1, lr > 0 and "
                         f"stage1_fraction in [0, 1]; got {len(cases)} cases, steps {steps}, batch_size "
                         f"{batch_size}, lr {lr}, stage1_fraction {stage1_fraction}")
    # imported here: patch_contrast imports this module
    from taskalign.pretrain.patch_contrast import labelled_bank, patch_contrast_config, train_patch_contrast

    dino = dino or dino_config(encoder.cfg.preset)
    contrast = contrast or patch_contrast_config(encoder.cfg.preset)
    if dino.keep not in ("student", "teacher"):
        raise ValueError(f"DinoConfig.keep must be 'student' or 'teacher', got {dino.keep!r}")
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    labelled = [c for c in cases if c.lesion is not None]
    steps1 = int(round(stage1_fraction * steps))
    if not labelled and steps1 < steps:
        warnings.warn("provicnet pretraining: no case has a lesion mask; stage 2 is skipped and "
                      "stage 1 (DINO) runs every step", stacklevel=2)
        steps1 = steps
    was_training = encoder.training
    encoder.train()
    losses = train_dino(encoder, SliceBank.from_cases(encoder, cases), steps1, batch_size, lr, generator, dino,
                        progress).losses if steps1 else []
    if steps > steps1:
        losses += train_patch_contrast(encoder, labelled_bank(encoder, labelled), steps - steps1, batch_size, lr,
                                       generator, contrast, progress, step_offset=steps1)
    encoder.train(was_training)
    return losses
