"""The manifest layout; kept here so `from taskalign.data.manifest import read_manifest` works.
The reader lives in `taskalign.data.real.manifest` (with the PI-CAI and MSD layouts beside it)."""
from taskalign.data.real.io import on_grid, same_grid
from taskalign.data.real.manifest import MASKS, REQUIRED, read_entry, read_manifest

__all__ = ["MASKS", "REQUIRED", "on_grid", "read_entry", "read_manifest", "same_grid"]
