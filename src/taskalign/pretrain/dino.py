"""Stage 1 of ProViCNet pretraining: DINO self-distillation on unlabelled 2.5D slices (the
registered two-stage recipe is `taskalign.pretrain.provicnet_recipe`).

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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taskalign.encoders.provicnet_heads import ProjectionHead
from taskalign.optim import cosine_schedule
from taskalign.pretrain.loop import Objective, Progress, StageSchedule, run_stage
from taskalign.pretrain.slices import SliceBank, SliceBatch
from taskalign.pretrain.views import dino_views, local_view_size


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


class DinoObjective(Objective):
    """Student (encoder + head) trained against an EMA teacher on a `SliceBank`'s slices."""

    where = "provicnet pretraining, stage 1 (DINO)"

    def __init__(self, encoder: nn.Module, bank: SliceBank, batch_size: int, cfg: DinoConfig,
                 generator: torch.Generator) -> None:
        super().__init__()
        device = next(encoder.parameters()).device
        head = ProjectionHead(encoder.embed_dim, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim).to(device)
        self.student = DinoNetwork(encoder, head)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.register_buffer("center", torch.zeros(cfg.out_dim, device=device))
        self.register_buffer("center_ready", torch.zeros((), dtype=torch.bool, device=device))
        self.bank, self.batch_size, self.cfg, self.generator = bank, batch_size, cfg, generator
        self.size = bank.slice_size[-1]
        self.local_size = local_view_size(self.size, encoder.patch_size)
        self._teacher_scores: torch.Tensor | None = None

    def loss(self, step: int, total_steps: int) -> torch.Tensor:
        device = self.center.device
        batch = self.bank.draw(self.batch_size, self.cfg.slices_per_volume, self.generator)
        glob, local = dino_views(batch, self.size, self.local_size, self.cfg, self.generator)
        batch, glob, local = batch.to(device), glob.to(device), local.to(device) if local is not None else None
        if not bool(self.center_ready):  # start from the teacher's own mean: no shared constant target at step 0
            with torch.no_grad():
                self.center.copy_(self.teacher(glob, batch, 2)[1].float().mean(0))
            self.center_ready.fill_(True)
        loss, self._teacher_scores = dino_step_loss(self.student, self.teacher, batch, glob, local, self.center,
                                                    self.cfg)
        return loss

    def after_backward(self, step: int, total_steps: int) -> None:
        if step < int(self.cfg.freeze_last_layer_fraction * total_steps):
            self.student.head.last_layer.weight_v.grad = None

    def finish(self) -> None:
        """`keep="teacher"` copies the EMA teacher into the encoder (DINO's released weights)."""
        if self.cfg.keep == "teacher":
            self.student.encoder.load_state_dict(self.teacher.encoder.state_dict())

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        m = cosine_schedule(step, total_steps, self.cfg.teacher_momentum, 1.0)
        for p_s, p_t in zip(self.student.parameters(), self.teacher.parameters()):
            p_t.mul_(m).add_(p_s.detach(), alpha=1 - m)
        mean = self._teacher_scores.float().mean(0)
        self.center.mul_(self.cfg.center_momentum).add_(mean, alpha=1 - self.cfg.center_momentum)


def dino_schedule(cfg: DinoConfig, steps: int, lr: float) -> StageSchedule:
    return StageSchedule(steps, lr, int(cfg.warmup_fraction * steps), min_lr_ratio=0.01,
                         weight_decay=cfg.weight_decay, clip_grad=cfg.clip_grad)


def train_dino(encoder: nn.Module, bank: SliceBank, steps: int, batch_size: int, lr: float,
               generator: torch.Generator, cfg: DinoConfig, progress: Progress | None = None) -> DinoOutcome:
    """Run `steps` DINO steps on `batch_size` volumes × `cfg.slices_per_volume` slices each;
    trains `encoder` in place and returns the per-step losses and the EMA teacher."""
    objective = DinoObjective(encoder, bank, batch_size, cfg, generator)
    losses = run_stage(objective, dino_schedule(cfg, steps, lr), 0, [], None, None, progress)
    return DinoOutcome(losses, objective.teacher, objective.center)
