"""Real prostate MRI folders (DESIGN.md §5): three layouts read into the phantom's `Case`.

    from taskalign.data.real import read_folder
    result = read_folder("cases.csv")            # or a PI-CAI tree, or an MSD folder (dwi="zero"|"drop")
    result.cases, result.problems, result.notes

Modules: `io` (SimpleITK reading, resampling onto the T2w grid), `regrid` (crop / resample a case
to a study grid), `problems` (what can be wrong), `folder` (read every case, report the broken),
one module per layout (`manifest`, `picai`, `msd`), `export` (phantom cases written as a real
folder), `cache` (preprocessed cases on disk), `check` (`taskalign data check`); folders as their
owners write them: `columns` (aliases, `--columns`, ids from paths), `labels` (`--label-rule`),
`masks` (0/255 and float masks), `dicom` (series folders, `--series`), `integrity` (whole gzip
files); `cli` (the options every command that reads a folder takes).
"""
from taskalign.data.real.folder import LAYOUTS, Entry, FolderRead, detect_layout, read_folder
from taskalign.data.real.problems import PROBLEM_KINDS, CaseError, Problem, validate_case

__all__ = ["LAYOUTS", "Entry", "FolderRead", "detect_layout", "read_folder", "PROBLEM_KINDS", "CaseError",
           "Problem", "validate_case"]
