"""The numeric core: arrays in, arrays out. Never imports the store, the web or the models.

``veritag.truth.crowdkit`` and ``veritag.truth.cleanlab`` are drop-in faces for users of those
libraries (they need pandas); everything here takes and returns numpy arrays.
"""

from .agreement import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_table,
    krippendorff_alpha,
    pairwise_cohen_kappa,
)
from .arena import OUTCOMES, BradleyTerry, Leaderboard, leaderboard, pair_priority
from .claims import Claims
from .engine import ENGINE_VERSION, METHODS, ConvergenceWarning, TruthResult, fit_truth
from .estimators import DawidSkene, MajorityVote, OneCoinDawidSkene, WeightedVote
from .label_issues import ClaimIssues, ItemIssues, claim_issues, item_issues
from .reliability import Reliability, source_reliability
from .voting import VoteResult, majority_vote, multilabel_vote

__all__ = [
    "ENGINE_VERSION",
    "METHODS",
    "OUTCOMES",
    "BradleyTerry",
    "ClaimIssues",
    "Claims",
    "ConvergenceWarning",
    "DawidSkene",
    "ItemIssues",
    "Leaderboard",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Reliability",
    "TruthResult",
    "VoteResult",
    "WeightedVote",
    "claim_issues",
    "cohen_kappa",
    "fit_truth",
    "fleiss_kappa",
    "fleiss_kappa_table",
    "item_issues",
    "krippendorff_alpha",
    "leaderboard",
    "majority_vote",
    "multilabel_vote",
    "pair_priority",
    "pairwise_cohen_kappa",
    "source_reliability",
]
