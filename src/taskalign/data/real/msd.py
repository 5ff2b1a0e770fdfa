"""The Medical Segmentation Decathlon Task05_Prostate layout (DESIGN.md §5).

    <root>/dataset.json          "modality": {"0": "T2", "1": "ADC"}, "training": [{"image", "label"}, ...]
    <root>/imagesTr/<id>.nii.gz  4-D: (x, y, z, modality)
    <root>/labelsTr/<id>.nii.gz  zones: 0 background, 1 PZ, 2 TZ (the gland is their union)

The layout has no DWI and no lesion or csPCa labels. What happens to DWI is an explicit choice,
`dwi="zero"` (the channel is zeros, as ProFound feeds a missing sequence) or `dwi="drop"` (the
channel is zeros and marked dropped: tasks that read or predict DWI are skipped); there is no
default, and the choice is written in the reader's notes and in each case's meta.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from taskalign.data.case import Case
from taskalign.data.real.folder import Entry
from taskalign.data.real.io import assemble_case, channel, read_image
from taskalign.data.real.problems import fail
from taskalign.errors import InputError

DWI_OPTIONS = ("zero", "drop")
MODALITY_NAMES = {"t2w": ("T2", "T2W", "T2WI"), "adc": ("ADC",)}


def _modalities(dataset: dict, path: Path) -> dict[str, int]:
    modality = {str(v).upper(): int(k) for k, v in (dataset.get("modality") or {}).items()}
    out = {}
    for seq, names in MODALITY_NAMES.items():
        index = next((modality[n] for n in names if n in modality), None)
        if index is None:
            raise InputError(f"{path}: 'modality' {dataset.get('modality')} names no {seq} ({'/'.join(names)})")
        out[seq] = index
    return out


def _case_id(image_path: str) -> str:
    name = Path(image_path).name
    return name[:-7] if name.endswith(".nii.gz") else Path(name).stem


def list_entries(root: Path, dwi: str | None = None) -> tuple[list[Entry], list[str]]:
    """One Entry per `training` item of dataset.json."""
    if dwi not in DWI_OPTIONS:
        raise InputError(f"the MSD layout has no DWI: choose dwi='zero' (zero-filled channel) or dwi='drop' "
                         f"(tasks that use DWI are skipped), got {dwi!r}")
    path = root / "dataset.json"
    if not path.is_file():
        raise InputError(f"MSD folder {root} has no dataset.json")
    try:
        dataset = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err})") from err
    modalities = _modalities(dataset, path)
    items = dataset.get("training")
    if not isinstance(items, list) or not items:
        raise InputError(f"{path} lists no 'training' cases")
    entries = []
    for item in items:
        files = {"image": root / item["image"]}
        if item.get("label"):
            files["zones"] = root / item["label"]
        entries.append(Entry(_case_id(item["image"]), files, None, {"modalities": modalities, "dwi": dwi}))
    what = "zero-filled" if dwi == "zero" else "dropped (tasks that read or predict DWI are skipped)"
    return entries, [f"msd: the layout has no DWI; the DWI channel is {what} (dwi={dwi!r})"]


def read_entry(entry: Entry) -> Case:
    """One MSD case -> Case: T2w and ADC from the 4-D image, zones and gland from the label."""
    file = entry.files["image"]
    image = read_image(entry.case_id, "image", file, dims=(4,))
    mods = entry.meta["modalities"]
    if image.GetSize()[3] <= max(mods.values()):
        raise fail(entry.case_id, file, "unreadable_file",
                   f"image file {file} has {image.GetSize()[3]} volumes; dataset.json's modality needs {max(mods.values()) + 1}")
    images = {"t2w": channel(image, mods["t2w"]), "dwi": None, "adc": channel(image, mods["adc"])}
    masks = {"zones": read_image(entry.case_id, "zones", entry.files["zones"])} if "zones" in entry.files else {}
    files = {"t2w": str(file), "adc": str(file), **({"zones": str(entry.files["zones"])} if masks else {})}
    meta = {"source": "msd", "dwi_option": entry.meta["dwi"],
            "dropped_sequences": ("dwi",) if entry.meta["dwi"] == "drop" else ()}
    case = assemble_case(entry.case_id, images, masks, files, None, meta)
    if case.zones is not None:
        case.gland = (case.zones > 0).astype(np.uint8)
    return case
