"""Model cards of in-house foundation weights (JSON for programs, Markdown for people), and the
shipped weights inside the package, verified against their card's sha256 on every load.

    src/taskalign/foundation/<encoder>-<size>.safetensors
    src/taskalign/foundation/<encoder>-<size>.json     the card (recipe, machine, loss, probes, gate)
    src/taskalign/foundation/<encoder>-<size>.md       the same card for people
"""
from __future__ import annotations

import json
from pathlib import Path

from taskalign.errors import InputError, UserError

FOUNDATION_DIR = Path(__file__).resolve().parent.parent / "foundation"


class CardMismatch(InputError):
    """Weights whose sha256 differs from their model card's: refused."""


class WeakPretraining(UserError, RuntimeError):
    """In-house weights that failed the foundation gate, used without --allow-weak-pretraining."""


def card_markdown(card: dict) -> str:
    recipe = card["recipe"]
    lines = [f"# In-house foundation weights: {card['encoder']} ({card['size']})", "",
             f"- objective: {card['objective']}",
             f"- cohort: {recipe['n_cases']} phantom `pretrain`-cohort cases (seed {recipe['cohort_seed']}), "
             f"grid {tuple(recipe['shape'])} at {tuple(recipe['spacing_mm'])} mm",
             f"- steps: {card['steps']} × batch {recipe['batch_size']} volumes, lr {recipe['lr']}, seed {recipe['seed']}, "
             f"options {dict(recipe['options'])}",
             f"- wall time: {card['wall_seconds_this_run'] / 60:.1f} min on {card['machine']['platform']} "
             f"({card['machine']['cpus']} CPUs, {card['threads']} thread(s), torch {card['machine']['torch']})"
             + (" (this run resumed from a checkpoint)" if card.get("resumed") else ""),
             f"- loss: first {card['loss'][0]:.4f}, last 100 steps mean "
             f"{sum(card['loss'][-100:]) / len(card['loss'][-100:]):.4f}",
             f"- sha256 of `{card['weights']}`: `{card['sha256']}`",
             f"- re-create: `taskalign pretrain {card['encoder']} --size {card['size']} --out DIR`", ""]
    probe = card.get("probe")
    if probe:
        lines += ["## Frozen probes (held-out phantom `probe` cohort; weights vs random initialisation)", "",
                  "| probe | kind | metric | random | these weights | difference, 95 % CI | informative |",
                  "|---|---|---|---|---|---|---|"]
        for p in probe["probes"]:
            lo, hi = p["diff_ci"]
            lines.append(f"| {p['name']} | {p['kind']} | {p['metric']} | {p['random']:.3f} | {p['pretrained']:.3f} | "
                         f"{p['pretrained'] - p['random']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                         f"{'yes' if p['informative'] else 'no (random ≥ 0.9)'} |")
        lines += ["", "| feature a head reads | spread σ/‖f‖ (random) | effective rank (random) |", "|---|---|---|"]
        for name, h in probe["health"].items():
            r = probe["health_random"][name]
            lines.append(f"| {name} | {h['spread']:.3f} ({r['spread']:.3f}) | "
                         f"{h['effective_rank']:.1f} ({r['effective_rank']:.1f}) |")
        gate = probe["gate"]
        lines += ["", f"**Gate: {'passed' if gate['passed'] else 'FAILED'}** — {gate['reason']}.", ""]
    return "\n".join(lines)


def write_card(out: Path, card: dict, stem: str = "card") -> None:
    from taskalign import io

    io.write_json(Path(out) / f"{stem}.json", card)
    io.write_text(Path(out) / f"{stem}.md", card_markdown(card))


def shipped_card(encoder: str, size: str) -> dict | None:
    path = FOUNDATION_DIR / f"{encoder}-{size}.json"
    return json.loads(path.read_text()) if path.exists() else None


def shipped_weights(encoder: str, size: str) -> Path | None:
    """The packaged weights of (encoder, size) after checking their sha256 against the card, or
    None when none are shipped. Raises CardMismatch when the file and the card disagree."""
    card = shipped_card(encoder, size)
    if card is None:
        return None
    weights = FOUNDATION_DIR / card["weights"]
    if not weights.exists():
        raise CardMismatch(f"{weights} is missing; its card {encoder}-{size}.json names it (reinstall the package)")
    verify_sha256(weights, card["sha256"])
    return weights


def verify_sha256(path: Path, expected: str) -> None:
    from taskalign.pretrain.recipe import sha256_of

    actual = sha256_of(path)
    if actual != expected:
        raise CardMismatch(f"{path}: sha256 {actual[:16]}… does not match its model card's {expected[:16]}…; "
                           f"the file was changed or corrupted: re-create it with `taskalign pretrain` or reinstall")


def gate_passed(card: dict | None) -> bool:
    return bool(card and card.get("probe", {}).get("gate", {}).get("passed"))
