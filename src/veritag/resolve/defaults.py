"""Method names the command line needs before anything heavy (the engine, the store) is imported."""

from __future__ import annotations

DEFAULT_METHOD = "ds"
#: The method of a run over an open-ended schema (free text, spans): exact-match majority vote.
OPEN_METHOD = "majority_vote"
