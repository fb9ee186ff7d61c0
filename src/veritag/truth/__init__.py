"""The numeric core: arrays in, arrays out. Never imports the store, the web or the models.

``veritag.truth.crowdkit`` and ``veritag.truth.cleanlab`` are drop-in faces for users of those
libraries (they need pandas); everything here takes and returns numpy arrays. Names load on
first use (``veritag.lazy``), so ``veritag.schema`` reads the arena outcomes without numpy.
"""

from ..lazy import lazy_exports

__all__ = [
    "ENGINE_VERSION",
    "METHODS",
    "OUTCOMES",
    "OUTCOME_SPELLINGS",
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

_HOMES = {
    **dict.fromkeys(
        (
            "cohen_kappa",
            "fleiss_kappa",
            "fleiss_kappa_table",
            "krippendorff_alpha",
            "pairwise_cohen_kappa",
        ),
        ".agreement",
    ),
    **dict.fromkeys(("BradleyTerry", "Leaderboard", "leaderboard", "pair_priority"), ".arena"),
    **dict.fromkeys(("Claims",), ".claims"),
    **dict.fromkeys(
        ("ConvergenceWarning", "ENGINE_VERSION", "METHODS", "TruthResult", "fit_truth"), ".engine"
    ),
    **dict.fromkeys(
        ("DawidSkene", "MajorityVote", "OneCoinDawidSkene", "WeightedVote"), ".estimators"
    ),
    **dict.fromkeys(("ClaimIssues", "ItemIssues", "claim_issues", "item_issues"), ".label_issues"),
    **dict.fromkeys(("OUTCOMES", "OUTCOME_SPELLINGS"), ".outcomes"),
    **dict.fromkeys(("Reliability", "source_reliability"), ".reliability"),
    **dict.fromkeys(("VoteResult", "majority_vote", "multilabel_vote"), ".voting"),
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
