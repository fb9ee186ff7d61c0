"""Routing to specialist tutors: who labels an item next, or whether it is done.

The package root is pure numpy (``gain``, ``policy``, ``skill``, ``domains``) plus the replay
simulator; the store side (tutors, leases, budget) is ``veritag.routing.service``, which gathers
``settings``, ``evidence``, ``leases`` and ``status``, imported on its own so that the math never
loads the database.
"""

from .domains import DEFAULT_DOMAINS, classify_domains, keyword_domains
from .gain import expected_gain, posterior_after
from .policy import (
    RoutingConfig,
    choose_tutors,
    item_done,
    next_item_for_tutor,
    plan_batch,
    tutor_confusion,
    tutor_scores,
)
from .simulate import (
    CrowdFiles,
    ReplayPool,
    SimulationResult,
    read_crowd,
    simulate_crowd,
    simulate_routing,
)

__all__ = [
    "DEFAULT_DOMAINS",
    "CrowdFiles",
    "ReplayPool",
    "RoutingConfig",
    "SimulationResult",
    "choose_tutors",
    "classify_domains",
    "expected_gain",
    "item_done",
    "keyword_domains",
    "next_item_for_tutor",
    "plan_batch",
    "posterior_after",
    "read_crowd",
    "simulate_crowd",
    "simulate_routing",
    "tutor_confusion",
    "tutor_scores",
]
