"""Loading encoder weights from local files, exactly and safely (DESIGN.md §3).

- `reading`: safetensors or `torch.load(weights_only=True)` only; files that need pickle are refused.
- `matching`: key-for-key loading; mismatches list missing, unexpected and mis-shaped keys.
- `profound`: ProFound's files (FCMAE sparse names converted to dense ones; fine-tuned dense files).
- `provicnet`: ProViCNet's per-sequence files and their heads; which file is which sequence.
- `formats`: recognising a file; `loading`: building an encoder from files; `inspection`, `cli`.
"""
from taskalign.encoders.weights.loading import CheckpointNote, create_with_weights, load_file_into, parse_weights_option
from taskalign.encoders.weights.matching import CheckpointMismatch, KeyReport
from taskalign.encoders.weights.reading import CheckpointRefused, read_state_dict

__all__ = ["CheckpointMismatch", "CheckpointNote", "CheckpointRefused", "KeyReport", "create_with_weights",
           "load_file_into", "parse_weights_option", "read_state_dict"]
