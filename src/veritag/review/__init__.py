"""The reviewer's work, without the web: the queue of suspected errors (``queue``) and the
verdicts that accept or correct a label (``corrections``). The server's ``review`` router parses
requests, calls these and serialises what they return; their refusals are ``errors``
(``NotFound``, ``InputError``, ``LabelError``) that carry their HTTP status."""

from .corrections import Action, Reviewer, review_item
from .queue import SUSPECT, UNCERTAIN, QueueEntry, review_queue

__all__ = [
    "SUSPECT",
    "UNCERTAIN",
    "Action",
    "QueueEntry",
    "Reviewer",
    "review_item",
    "review_queue",
]
