"""Paper-size encoders at batch 1: forward and forward+backward time next to the parameter count.

    python bench/encoders.py                 # every paper-size model, one CPU thread
    python bench/encoders.py --threads 2 --repeats 3
    python bench/encoders.py --device cuda

Inputs are the published ones: ProFound (`profound_conv`) one volume of 3 × 64 × 224 × 224,
ProFound's ViT (`profound_vit`) one volume of 3 × 64 × 256 × 256 (256 patch tokens);
ProViCNet (`provicnet`) one slice position of a volume of 3 sequences at 448 × 448 (each
sequence's three neighbouring slices go through the ViT: 3 ViT-S/14 passes of 1031 tokens), in
the in-house layout (one shared backbone with a sequence token) and the published one (one
backbone per sequence). Forward: eval mode without gradients. Forward+backward: train mode, the
backward of the sum of every output (pooled and maps). Times are the median of `--repeats` runs
after one warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from taskalign import create_encoder

MODELS = {
    "profound_conv": (dict(name="profound_conv"), (1, 3, 64, 224, 224), None),
    "provicnet (shared)": (dict(name="provicnet"), (1, 3, 3, 448, 448), [1]),
    "provicnet (per-sequence, published)": (dict(name="provicnet", per_sequence=True), (1, 3, 3, 448, 448), [1]),
    "profound_vit": (dict(name="profound_vit"), (1, 3, 64, 256, 256), None),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(label: str, device: str, repeats: int) -> dict:
    """Forward and forward+backward seconds of one paper-size model at batch 1."""
    kwargs, shape, slices = MODELS[label]
    torch.manual_seed(0)
    encoder = create_encoder(size="paper", **kwargs).to(device)
    x = torch.randn(*shape, device=device)
    sl = torch.tensor(slices, device=device) if slices else None

    def forward() -> None:
        encoder.eval()
        with torch.no_grad():
            encoder(x, sl)

    def forward_backward() -> None:
        encoder.train()
        encoder.zero_grad(set_to_none=True)
        out = encoder(x, sl)
        (out["pooled"].sum() + sum(m.sum() for m in out["maps"])).backward()

    return {"model": label, "parameters": sum(p.numel() for p in encoder.parameters()),
            "input": "x".join(map(str, shape)) + (f", slices {slices}" if slices else ""),
            "forward_s": _median_time(forward, device, repeats),
            "forward_backward_s": _median_time(forward_backward, device, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, {torch.get_num_threads()} thread(s), batch 1, median of {args.repeats}")
    print(f"{'model':<38} {'params':>8} {'input':<28} {'forward s':>10} {'fwd+bwd s':>10} {'ratio':>6}")
    for label in args.models:
        r = bench_model(label, args.device, args.repeats)
        print(f"{r['model']:<38} {r['parameters'] / 1e6:>7.2f}M {r['input']:<28} {r['forward_s']:>10.2f} "
              f"{r['forward_backward_s']:>10.2f} {r['forward_backward_s'] / r['forward_s']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
