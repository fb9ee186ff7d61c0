"""Routing to specialist tutors: who labels an item next, or whether it is done."""

from .gain import expected_gain, posterior_after

__all__ = ["expected_gain", "posterior_after"]
