"""What a checkpoint file holds, and which encoder, format and size it fits (`taskalign checkpoint inspect`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taskalign.encoders.weights.formats import best_size, convert, identify
from taskalign.encoders.weights.profound import NORM_NOTE
from taskalign.encoders.weights.reading import read_state_dict


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """{"file", "encoder", "format", "size", "tensors", "parameters", "missing", "unexpected",
    "misshaped", "notes", "loadable"} for the file at `path`. `encoder` / `format` are None for a
    file no known layout matches; `missing` / `unexpected` / `misshaped` compare the file (after
    conversion) with the size it fits best. Raises CheckpointRefused for an unsafe file."""
    state = read_state_dict(path)
    info: dict[str, Any] = {"file": str(path), "encoder": None, "format": None, "size": None,
                            "tensors": len(state), "parameters": int(sum(v.numel() for v in state.values())),
                            "missing": [], "unexpected": [], "misshaped": [], "notes": [], "loadable": False}
    placement = identify(state)
    if placement is None:
        info["notes"].append("no known checkpoint layout matches these keys (profound_conv FCMAE or dense, "
                             "provicnet published or in-house)")
        return info
    converted = convert(placement.format, state)
    size, report = best_size(placement, converted)
    notes = list(converted.notes)
    if report.optional_missing and placement.format.startswith("profound"):
        notes.append(NORM_NOTE.format(encoder=placement.encoder))
    info.update(encoder=placement.encoder, format=placement.format, size=size, missing=report.missing,
                unexpected=report.unexpected, misshaped=[[k, list(a), list(b)] for k, a, b in report.misshaped],
                notes=notes, loadable=report.ok)
    return info


def describe(info: dict[str, Any]) -> str:
    """A few human-readable lines for `inspect_checkpoint`'s result."""
    lines = [f"file:       {info['file']}",
             f"encoder:    {info['encoder'] or 'unknown'}   format: {info['format'] or 'unknown'}   "
             f"size: {info['size'] or '-'}",
             f"tensors:    {info['tensors']}   parameters: {info['parameters']:,}",
             f"loadable:   {'yes' if info['loadable'] else 'no'}"]
    for title in ("missing", "unexpected", "misshaped"):
        items = info[title]
        if items:
            shown = ", ".join(str(i) for i in items[:8]) + (" ..." if len(items) > 8 else "")
            lines.append(f"{title + ':':<11} {len(items)}: {shown}")
    lines += [f"note:       {n}" for n in info["notes"]]
    return "\n".join(lines)
