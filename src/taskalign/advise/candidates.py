"""Candidates for `taskalign advise`: an encoder name and where its weights come from.

    NAME            the shipped in-house foundation weights of NAME at the size
                    (`taskalign.pretrain.card.shipped_weights`); when none are shipped, NAME's
                    random initialisation, and the candidate says so
    NAME=FILE       a local checkpoint, loaded key for key (`taskalign.encoders.weights`)
    NAME=random     NAME's random initialisation (torch seed 0): the floor every other
                    candidate should clear
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from taskalign.encoders.base import Encoder, create_encoder, list_encoders
from taskalign.encoders.weights.loading import CheckpointNote
from taskalign.encoders.weights.provicnet import parse_entries

RANDOM_SEED = 0


@dataclass(frozen=True)
class Candidate:
    label: str                   # as given, e.g. "profound_conv=ckpt_a.safetensors"
    encoder: str                 # registered encoder name
    size: str
    weights: "str | Path | None"  # a file (provicnet: FILE,FILE,FILE allowed); None: random init
    source: str                  # "shipped", "file" or "random"
    note: str = ""               # what a user should know (a fallback, a gate that failed)

    def build(self, sequences: tuple[str, ...]) -> tuple[Encoder, list[str]]:
        """The encoder for `sequences` with this candidate's weights (files through
        `create_with_weights`, i.e. `load_file_into`, key for key), and the loader's notes."""
        with warnings.catch_warnings(record=True) as caught, torch.random.fork_rng(devices=[]):
            warnings.simplefilter("always")
            torch.manual_seed(RANDOM_SEED)
            encoder = create_encoder(self.encoder, size=self.size, input_sequences=tuple(sequences),
                                     weights=str(self.weights) if self.weights else None)
        return encoder, [str(w.message) for w in caught if issubclass(w.category, CheckpointNote)]


def _shipped(label: str, name: str, size: str) -> Candidate:
    from taskalign.pretrain.card import gate_passed, shipped_card, shipped_weights

    path = shipped_weights(name, size)
    if path is None:
        return Candidate(label, name, size, None, "random",
                         f"no shipped foundation weights for {name} ({size}) in this install: "
                         "scored at its random initialisation instead")
    note = "" if gate_passed(shipped_card(name, size)) else "these shipped weights failed the foundation gate"
    return Candidate(label, name, size, path, "shipped", note)


def parse_candidate(item: str, size: str) -> Candidate:
    """`NAME`, `NAME=FILE` or `NAME=random` (module docstring) -> Candidate; ValueError naming the
    item when the encoder is not registered or the file does not exist."""
    name, sep, spec = item.partition("=")
    if name not in list_encoders():
        raise ValueError(f"--encoders {item!r}: unknown encoder {name!r}; registered: {', '.join(list_encoders())}")
    if not sep:
        return _shipped(item, name, size)
    if not spec:
        raise ValueError(f"--encoders {item!r}: give NAME, NAME=FILE or NAME=random")
    if spec == "random":
        return Candidate(item, name, size, None, "random")
    for _, path in parse_entries(spec):        # provicnet may name one file per sequence
        if not path.is_file():
            raise ValueError(f"--encoders {item!r}: weights file {path} does not exist")
    return Candidate(item, name, size, spec, "file")


def parse_candidates(items: list[str], size: str) -> list[Candidate]:
    """Every candidate of `--encoders`; ValueError for a bad item or a label given twice."""
    candidates = [parse_candidate(item, size) for item in items]
    labels = [c.label for c in candidates]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"--encoders names {', '.join(twice)} more than once")
    if not candidates:
        raise ValueError("--encoders: give at least one candidate")
    return candidates
