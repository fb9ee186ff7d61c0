"""The numeric core: arrays in, arrays out. Never imports the store, the web or the models."""

from .voting import VoteResult, majority_vote, multilabel_vote

__all__ = ["VoteResult", "majority_vote", "multilabel_vote"]
