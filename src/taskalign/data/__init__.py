"""Data: the `Case` contract and its sources (phantom, real folders)."""
from taskalign.data.case import SEQUENCES, Case, body_mask
from taskalign.data.sources import create_source, list_sources, register_source

__all__ = ["SEQUENCES", "Case", "body_mask", "create_source", "list_sources", "register_source"]
