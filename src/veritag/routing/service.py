"""Routing on a project: tutors pull work, each item goes where one more label is worth most.

This module is the public face of live routing and holds no code of its own: callers write
``from veritag.routing import service as routing`` and call ``routing.request_work(...)``. The
work is split by job:

- ``routing.settings``: a project's routing settings (``ProjectRouting``, ``configure``) and its
  tutors (``add_tutor``, ``set_tutor_active``, ``list_tutors``);
- ``routing.evidence``: what a decision reads (item domains, the stored truth run's posterior
  with the claims since folded in, each tutor's skill per domain), with the process-local
  caches that make reading it cheap;
- ``routing.leases``: the tutor's loop (``request_work``, ``submit``, ``undo``, ``release``) and
  cutting short the leases of dead server processes (``release_orphaned_leases``);
- ``routing.status``: where routing stands (``routing_status``) and push (``best_tutors``).

The rules themselves (expected gain, when an item is done) are the pure functions of
``routing.gain`` and ``routing.policy``, shared with the replay simulator.
"""

from .evidence import item_domains
from .leases import (
    Lease,
    NotYourLease,
    release,
    release_orphaned_leases,
    request_work,
    submit,
    undo,
)
from .settings import (
    ProjectRouting,
    TutorProfile,
    add_tutor,
    configure,
    get_settings,
    list_tutors,
    set_tutor_active,
)
from .status import RoutingStatus, TutorScore, TutorStatus, best_tutors, routing_status

__all__ = [
    "Lease",
    "NotYourLease",
    "ProjectRouting",
    "RoutingStatus",
    "TutorProfile",
    "TutorScore",
    "TutorStatus",
    "add_tutor",
    "best_tutors",
    "configure",
    "get_settings",
    "item_domains",
    "list_tutors",
    "release",
    "release_orphaned_leases",
    "request_work",
    "routing_status",
    "set_tutor_active",
    "submit",
    "undo",
]
