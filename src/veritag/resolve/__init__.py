"""Resolved labels: the one place that turns claims into one answer per item, and keeps the answer.

How each kind of task is resolved:

* **Categorical** schemas (classification, rating, pairwise, fact-check verdicts: every schema
  whose ``classes()`` is not empty) go through the truth engine, ``veritag.truth.fit_truth``,
  over *all* claims at once: a human claim is a hard label, a model claim is its probability
  row, and gold labels are pinned. ``method`` is one of ``veritag.truth.METHODS``: ``ds``
  (Dawid-Skene as crowd-kit fits it, the default), ``onecoin``, ``ds-shrunk``, ``glad``,
  ``mace``, ``auto``, ``wmv`` or ``mv``.
* **Multi-label**: one binary sub-task per (item, label) pair, "label applies or not", all in
  one ``Claims`` for the engine; a source keeps one reliability across labels. A label applies
  where its posterior probability is above one half; the confidence is the mean over labels of
  the probability of the decision taken.
* **Open-ended** schemas (free text, spans) have no fixed classes for the engine: they keep the
  majority vote over exact matches of the canonical value (``vote_key``), and the run's method
  is ``majority_vote`` whatever was asked.

Models are sources like tutors. A model that no human claim and no gold label ever checked
cannot be measured, so an item whose only claims come from such models takes them at face
value: the mean of their probability rows (one model: its own row). Items with only model
claims therefore still get a label, and a model that humans or gold *have* checked is read
through what the engine learned about it (an inverted model gets inverted).

A resolution can be stored as a *run* (``save_resolution``): one ``truth_runs`` row with the
method, engine version, the claims version, newest claim id and gold count it covered, plus a
run's answer per item in compressed blocks (``store.posterior_blocks``) and a
``source_reliability`` row per source. Runs are append-only
history, except that storing one prunes the rows of all but the newest few of its method
(``RunPruned`` when one is read; docs/guide/storage.md).
``current_truth`` (module ``current``) is the one owner of which run is current: every reader
asks it, a GET with ``refit="never"`` (read the newest run, say how stale it is, never fit), a
command with ``refit="stale"`` (``current_resolution``: fit again on any new claim).

``human_labels`` resolves from human claims and gold only: the reference a model is graded
against by the auto-labeler and by automation, which must not include the model itself.

``resolve_files`` does the same without a database, on a long ``task,worker,label`` file that
``read_label_files`` (the io package's labels module) read into codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from ..truth import METHODS
    from .core import (
        DEFAULT_METHOD,
        ENGINE_PARAMS,
        OPEN_METHOD,
        Resolution,
        RunInfo,
        SourceStats,
        effective_method,
    )
    from .current import CurrentTruth, NotResolved, current_resolution, current_truth, load_truth
    from .files import (
        FileClaims,
        FileResolution,
        RankedSource,
        project_source_rows,
        rank_sources,
        resolve_files,
    )
    from .human import HumanLabels, human_labels
    from .project import ProjectClaims, load_project_claims, resolve_project
    from .runs import RunPruned, load_resolution, resolve_and_store, save_resolution

#: Where each public name lives. Imported on first use: file mode needs neither the store nor
#: SQLAlchemy, and ``veritag resolve labels.csv`` should not pay for importing them.
_HOMES = {
    "METHODS": "..truth",
    **dict.fromkeys(
        (
            "DEFAULT_METHOD",
            "ENGINE_PARAMS",
            "OPEN_METHOD",
            "Resolution",
            "RunInfo",
            "SourceStats",
            "effective_method",
        ),
        ".core",
    ),
    **dict.fromkeys(
        (
            "FileClaims",
            "FileResolution",
            "RankedSource",
            "project_source_rows",
            "rank_sources",
            "resolve_files",
        ),
        ".files",
    ),
    **dict.fromkeys(("HumanLabels", "human_labels"), ".human"),
    **dict.fromkeys(("ProjectClaims", "load_project_claims", "resolve_project"), ".project"),
    **dict.fromkeys(
        ("CurrentTruth", "NotResolved", "current_resolution", "current_truth", "load_truth"),
        ".current",
    ),
    **dict.fromkeys(
        ("RunPruned", "load_resolution", "resolve_and_store", "save_resolution"), ".runs"
    ),
}

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "ENGINE_PARAMS",
    "OPEN_METHOD",
    "Resolution",
    "RunInfo",
    "SourceStats",
    "effective_method",
    "FileClaims",
    "FileResolution",
    "RankedSource",
    "project_source_rows",
    "rank_sources",
    "resolve_files",
    "HumanLabels",
    "human_labels",
    "ProjectClaims",
    "load_project_claims",
    "resolve_project",
    "CurrentTruth",
    "NotResolved",
    "current_resolution",
    "current_truth",
    "load_truth",
    "RunPruned",
    "load_resolution",
    "resolve_and_store",
    "save_resolution",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
