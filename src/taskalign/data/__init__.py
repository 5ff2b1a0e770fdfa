"""Data: the `Case` contract and its sources (phantom, real folders)."""
from taskalign.data.case import SEQUENCES, Case, body_mask

__all__ = ["SEQUENCES", "Case", "body_mask"]
