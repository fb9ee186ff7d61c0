"""Arena projects: model responses to prompts, battles between pairs of models, a leaderboard.

``importer`` turns response files and judged-battle files into battle items and claims,
``board`` reads a project's votes into a leaderboard (tutors weighted by reliability) and
``priority`` tells the router which battles are worth a vote next. The rating maths is in
``veritag.truth.arena``.
"""

from __future__ import annotations

from .board import Battles, load_battles, project_domains, project_leaderboard, tutor_weights
from .importer import ArenaImport, arena_schema, battle_id, import_battles, import_responses
from .priority import item_priority

__all__ = [
    "ArenaImport",
    "Battles",
    "arena_schema",
    "battle_id",
    "import_battles",
    "import_responses",
    "item_priority",
    "load_battles",
    "project_domains",
    "project_leaderboard",
    "tutor_weights",
]
