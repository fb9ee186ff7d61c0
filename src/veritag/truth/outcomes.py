"""The one vocabulary of arena battle outcomes: what is stored and every spelling accepted.

Plain Python (no numpy) so that ``veritag.schema`` checks a vote without loading the numeric
core; the leaderboard (``truth.arena``), the arena schema and the battles importer all read it.
"""

from __future__ import annotations

import re

__all__ = ["OUTCOMES", "OUTCOME_SPELLINGS", "outcome_named", "spelling_key", "unknown_outcome"]

#: The four outcomes of a battle, as they are stored: model A won, model B won, a tie, both bad.
OUTCOMES = ("A", "B", "tie", "both_bad")
#: Every spelling of each outcome that is accepted, here, by the arena schema and by the battles
#: importer alike (the one vocabulary; FastChat's ``model_a``/``model_b``/``tie (bothbad)`` too).
#: Case, surrounding blanks and a space or hyphen instead of an underscore do not matter (see
#: ``outcome_named``), so ``"Both bad"`` and ``"MODEL_A"`` are accepted as well.
OUTCOME_SPELLINGS: dict[str, tuple[str, ...]] = {
    "A": ("A", "model_a"),
    "B": ("B", "model_b"),
    "tie": ("tie",),
    "both_bad": ("both_bad", "bothbad", "tie (bothbad)"),
}


def spelling_key(text: str) -> str:
    """The form spellings are compared in: lower case, stripped, words joined by underscores."""
    return re.sub(r"[\s_-]+", "_", text.strip().lower())


_SPELLED = {spelling_key(s): o for o, spellings in OUTCOME_SPELLINGS.items() for s in spellings}


def outcome_named(raw: object) -> str | None:
    """The outcome (one of ``OUTCOMES``) that ``raw`` spells, or None if it spells none."""
    return _SPELLED.get(spelling_key(raw)) if isinstance(raw, str) else None


def unknown_outcome(raw: object) -> str:
    """Why ``raw`` is refused, with every accepted spelling: one message for every path."""
    accepted = ", ".join(repr(s) for spellings in OUTCOME_SPELLINGS.values() for s in spellings)
    return f"{raw!r} is not one of the accepted outcomes {accepted} (in any case)"
