"""Building an encoder from a local checkpoint file (DESIGN.md §3: `--weights ENCODER=FILE`).

    encoder = create_with_weights("profound_conv", "paper", SEQUENCES, "profound_fcmae.pth")
    encoder = create_with_weights("provicnet", "paper", ("t2w", "adc"), "T2.pth,ADC.pth,DWI.pth")

Every file is read safely (`reading`), recognised (`formats`), converted and loaded key for key
(`matching`); notes (such as ProFound's final norm kept at its init) are issued as
`CheckpointNote` warnings and returned by `load_file_into`.
"""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

from taskalign.encoders.base import Encoder, create_encoder
from taskalign.encoders.weights.formats import Placement, best_size, convert, identify, layout_module
from taskalign.encoders.weights.matching import CheckpointMismatch, compare_keys, load_exactly, shapes_of
from taskalign.encoders.weights.profound import NORM_NOTE
from taskalign.encoders.weights.provicnet import parse_entries, sequence_files
from taskalign.encoders.weights.reading import read_state_dict, refuse_unrecognised
from taskalign.errors import InputError


class CheckpointNote(UserWarning):
    """Something the loader did that a user should know (not an error)."""


def encoder_size(encoder: Encoder) -> str:
    return getattr(encoder, "size", None) or getattr(getattr(encoder, "cfg", None), "preset", "custom")


def load_file_into(encoder: Encoder, path: str | Path, expect_encoder: str, fmt: str | None = None) -> list[str]:
    """Load checkpoint `path` into `encoder` (a `expect_encoder` encoder) key for key; returns the
    notes. Raises CheckpointRefused (unsafe file), ValueError (another encoder's file) or
    CheckpointMismatch (keys or shapes differ; the message says which size the file fits)."""
    path = Path(path)
    state = read_state_dict(path)
    placement = identify(state)
    if placement is not None and placement.encoder != expect_encoder:
        raise InputError(f"{path} is a {placement.encoder} checkpoint ({placement.format}), not {expect_encoder}")
    fmt = fmt or (placement.format if placement else "taskalign")
    converted = convert(fmt, state)
    module = layout_module(fmt, encoder)
    target = f"{expect_encoder} ({encoder_size(encoder)}, format {fmt})"
    report = compare_keys(shapes_of(module), converted.state, converted.optional)
    if not report.ok:
        hint = ""
        if placement is not None:
            size, fit = best_size(Placement(expect_encoder, fmt), converted)
            hint = (f"the file fits size {size!r}: build the encoder with size={size!r} (in the study, a preset "
                    f"with that encoder size, e.g. --preset paper for published files)") if fit.ok else ""
        raise CheckpointMismatch(str(path), target, report, hint)
    report = load_exactly(module, converted.state, str(path), target, converted.optional)
    notes = converted.notes + ([NORM_NOTE.format(encoder=expect_encoder)]
                               if report.optional_missing and fmt.startswith("profound") else [])
    for note in notes:
        warnings.warn(f"{path}: {note}", CheckpointNote, stacklevel=2)
    return notes


@lru_cache(maxsize=32)
def _format_cached(path: str, mtime_ns: int, size: int) -> Placement | None:
    return identify(read_state_dict(path))


def placement_of(path: str | Path) -> Placement | None:
    """`identify` of a file, cached by (path, modification time, size)."""
    st = os.stat(path)
    return _format_cached(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def _provicnet(size: str, input_sequences: tuple[str, ...], weights, load: bool, kw: dict) -> Encoder:
    entries = parse_entries(weights)
    if not entries:
        raise InputError("provicnet weights: no file given")
    first = placement_of(entries[0][1])
    if first is not None and first.format == "taskalign":  # in-house: one shared backbone for all sequences
        if len(entries) != 1:
            raise InputError(f"{entries[0][1]} is an in-house provicnet file (shared backbone); give it alone")
        encoder = create_encoder("provicnet", size=size, input_sequences=input_sequences, **kw)
        if load:
            load_file_into(encoder, entries[0][1], "provicnet")
        return encoder
    files = sequence_files(weights, input_sequences)
    encoder = create_encoder("provicnet", size=size, input_sequences=input_sequences, per_sequence=True, **kw)
    if load:
        for seq, path in files.items():
            load_file_into(encoder.sequences[seq], path, "provicnet", fmt="provicnet-published")
    return encoder


def create_with_weights(name: str, size: str, input_sequences: tuple[str, ...], weights, load: bool = True,
                        **kw) -> Encoder:
    """Encoder `name` at `size` with the weights of local file(s) `weights` (a path; for provicnet
    also one file per sequence: "t2w:A.pth,adc:B.pth", a list, or {sequence: path}). With
    `load=False` the architecture the files imply is built with random weights (the study's
    scratch runs)."""
    input_sequences = tuple(input_sequences)
    if name == "provicnet":
        return _provicnet(size, input_sequences, weights, load, kw)
    entries = parse_entries(weights)
    if len(entries) != 1:
        raise InputError(f"{name}: expected one weights file, got {[str(p) for _, p in entries]}")
    encoder = create_encoder(name, size=size, input_sequences=input_sequences, **kw)
    if load:
        load_file_into(encoder, entries[0][1], name)
    return encoder


def parse_weights_option(item: str) -> tuple[str, str]:
    """`ENCODER=FILE[,FILE...]` (each FILE optionally `sequence:FILE`) -> (encoder, spec with
    absolute paths). Raises ValueError naming the item and the file that does not exist."""
    name, sep, files = item.partition("=")
    if not sep or not name or not files:
        raise InputError(f"--weights expects ENCODER=FILE (provicnet: ENCODER=FILE,FILE,FILE), got {item!r}")
    parts = []
    for seq, path in parse_entries(files):
        if not path.is_file():
            raise InputError(f"--weights {item!r}: file {path} does not exist")
        parts.append(f"{seq}:{path.resolve()}" if seq else str(path.resolve()))
    return name, ",".join(parts)


def refuse_unrecognised_files(spec: str) -> None:
    """Raise `CheckpointRefused` for a file of a `parse_weights_option` spec whose first bytes are
    no checkpoint's, before a study spends time on its cohort and other encoders."""
    for _, path in parse_entries(spec):
        refuse_unrecognised(path)
