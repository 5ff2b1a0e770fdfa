"""Preprocessing cache: a hit gives the same case, an edited file or a changed setting is a miss
(stale entries never used), entries load with allow_pickle=False, a corrupt entry is ignored."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from real_folders import phantom_cases
from taskalign.data.real import read_folder
from taskalign.data.real.cache import PreprocessCache
from taskalign.data.real.export import export_cases


def _same(a, b) -> None:
    assert a.case_id == b.case_id and a.label == b.label and a.spacing_mm == b.spacing_mm
    np.testing.assert_array_equal(a.image, b.image)
    for m in ("gland", "zones", "lesion"):
        np.testing.assert_array_equal(getattr(a, m), getattr(b, m))


def test_hit_miss_and_stale(tmp_path):
    csv_path = export_cases(phantom_cases(2), tmp_path / "data", "manifest")
    cache = PreprocessCache(tmp_path / "cache")
    kw = dict(crop=(6, 24, 24), spacing_mm=(4.0, 3.0, 3.0), cache=cache)
    cold = read_folder(csv_path, **kw)
    assert (cache.hits, cache.misses) == (0, 2)
    warm = read_folder(csv_path, **kw)
    assert (cache.hits, cache.misses) == (2, 2)
    for a, b in zip(cold.cases, warm.cases):
        _same(a, b)
    for entry in (tmp_path / "cache").rglob("*.npz"):
        with np.load(entry, allow_pickle=False) as data:         # plain arrays only
            assert "image" in data.files and "header" in data.files
    # edit one file's content: that case is recomputed from the new file, the other still hits
    t2w = tmp_path / "data" / "cases" / cold.cases[0].case_id / "t2w.nii.gz"
    image = sitk.ReadImage(str(t2w))
    sitk.WriteImage(image * 2.0, str(t2w))
    edited = read_folder(csv_path, **kw)
    assert (cache.hits, cache.misses) == (3, 3)
    np.testing.assert_allclose(edited.cases[0].image[0], 2 * cold.cases[0].image[0], rtol=1e-5, atol=1e-3)
    # another setting is another key
    read_folder(csv_path, crop=(6, 24, 24), spacing_mm=(4.0, 2.0, 2.0), cache=cache)
    assert cache.misses == 5


def test_corrupt_entry_is_ignored_and_rewritten(tmp_path):
    csv_path = export_cases(phantom_cases(1), tmp_path / "data", "manifest")
    cache = PreprocessCache(tmp_path / "cache")
    first = read_folder(csv_path, cache=cache).cases[0]
    (entry,) = list((tmp_path / "cache").rglob("*.npz"))
    entry.write_bytes(b"garbage")
    again = read_folder(csv_path, cache=cache).cases[0]
    assert cache.hits == 0 and cache.misses == 2
    _same(first, again)
    assert read_folder(csv_path, cache=cache).cases and cache.hits == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))
