"""The labeled text data sets the automation and embedding benchmarks read from ../shared/data.

    load(name, n=None, seed=0) -> (texts, labels)

``name`` is ``sms_spam``, ``financial_phrasebank`` (the all-agree file), ``medical_abstracts``
or ``snow_rte`` (text and hypothesis on two lines, with ground truth). ``n`` keeps the first
``n`` SMS, or a seeded random sample of the others.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

SHARED = Path(
    os.environ.get("VERITAG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
NAMES = ("financial_phrasebank", "sms_spam", "medical_abstracts", "snow_rte")


def _pairs(name: str) -> list[tuple[str, str]]:
    text = SHARED / "text"
    if name == "sms_spam":
        with (text / name / "SMSSpamCollection.tsv").open(
            newline="", encoding="utf-8", errors="replace"
        ) as fh:
            return [
                (r[1], r[0])
                for r in list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
            ]
    if name == "financial_phrasebank":
        lines = (text / name / "Sentences_AllAgree.txt").read_text(encoding="utf-8").splitlines()
        return [(p[0], p[1]) for p in (line.rsplit("@", 1) for line in lines if "@" in line)]
    if name == "medical_abstracts":
        with (text / name / "medical_tc_test.csv").open(newline="", encoding="utf-8") as fh:
            return [(r["medical_abstract"], r["condition_label"]) for r in csv.DictReader(fh)]
    if name == "snow_rte":
        crowd = SHARED / "crowd" / name
        with (crowd / "texts.csv").open(encoding="utf-8") as fh:
            texts = {r["task"]: f"{r['text']}\n{r['hypothesis']}" for r in csv.DictReader(fh)}
        with (crowd / "gt.csv").open(encoding="utf-8") as fh:
            gt = {r["task"]: r["label"] for r in csv.DictReader(fh)}
        return [(texts[t], gt[t]) for t in texts if t in gt]
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")


def load(name: str, n: int | None = None, seed: int = 0) -> tuple[list[str], list[str]]:
    """(texts, labels) of one data set; see the module docstring for ``n``."""
    pairs = _pairs(name)
    if n and n < len(pairs):
        keep = (
            range(n)
            if name == "sms_spam"
            else sorted(np.random.default_rng(seed).choice(len(pairs), n, replace=False))
        )
        pairs = [pairs[i] for i in keep]
    return [t for t, _ in pairs], [label for _, label in pairs]
