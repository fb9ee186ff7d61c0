"""Automation with a guarantee on real labeled text: how much can a model label on its own?

    python benchmarks/automation.py [--draws 20] [--labeler tfidf]

For each data set (financial_phrasebank AllAgree, sms_spam, medical_abstracts from
<shared>/data/text, and snow_rte from <shared>/data/crowd with its ground truth), a labeler's
out-of-fold probabilities (5 folds, trained on ground truth of the other folds, as if humans had
labeled them) give each item a confidence. Then, over ``--draws`` random audits of 10% of the
items (at least 200), the policy of ``veritag.automation`` picks a threshold for targets 0.95
and 0.98 (delta 0.05), and the accuracy of auto-accepted items is measured on ground truth the
policy never saw (items outside the audit). Printed: the mean automation rate, the mean and the
worst realised accuracy, and the share of draws meeting the target (the guarantee asks >= 95%).

Still to come with the embedding labeler (issue 4): the same table with all-MiniLM-L6-v2
embeddings, and embedding throughput against sentence-transformers.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from veritag.automation import simulate
from veritag.automation.replay import LABELERS
from veritag.labelers import out_of_fold_proba

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str) -> tuple[list[str], list[str]]:
    """Texts and ground-truth labels of one data set."""
    text = SHARED / "text"
    if name == "financial_phrasebank":
        rows = (text / name / "Sentences_AllAgree.txt").read_text(encoding="utf-8").splitlines()
        pairs = [r.rsplit("@", 1) for r in rows if "@" in r]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if name == "sms_spam":
        with (text / name / "SMSSpamCollection.tsv").open(encoding="utf-8", errors="replace") as f:
            rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][1:]
        return [r[1] for r in rows], [r[0] for r in rows]
    if name == "medical_abstracts":
        with (text / name / "medical_tc_test.csv").open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [r["medical_abstract"] for r in rows], [r["condition_label"] for r in rows]
    if name == "snow_rte":
        crowd = SHARED / "crowd" / name
        with (crowd / "texts.csv").open(encoding="utf-8") as f:
            texts = {r["task"]: f"{r['text']} [SEP] {r['hypothesis']}" for r in csv.DictReader(f)}
        with (crowd / "gt.csv").open(encoding="utf-8") as f:
            gt = {r["task"]: r["label"] for r in csv.DictReader(f)}
        tasks = [t for t in texts if t in gt]
        return [texts[t] for t in tasks], [gt[t] for t in tasks]
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=20, help="random audits per data set and target")
    parser.add_argument("--labeler", default="tfidf", choices=sorted(LABELERS))
    args = parser.parse_args()
    print("| data set | items | labeler accuracy | target | automation rate | realised accuracy (mean / worst) "
          "| draws meeting target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("financial_phrasebank", "sms_spam", "medical_abstracts", "snow_rte"):
        texts, labels = load(name)
        classes = sorted(set(labels))
        t = time.perf_counter()
        probs = out_of_fold_proba(LABELERS[args.labeler], texts, np.asarray(labels, dtype=object), classes=classes)
        seconds = time.perf_counter() - t
        correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(labels, dtype=object)
        conf = probs.max(axis=1)
        audit = min(len(texts), max(200, len(texts) // 10))
        for target in (0.95, 0.98):
            runs = [simulate(conf, correct, audit_size=audit, target=target, delta=0.05, rng=seed)
                    for seed in range(args.draws)]
            rate = np.mean([r["automation_rate"] for r in runs])
            accs = [r["realized_accuracy"] for r in runs if r["realized_accuracy"] is not None]
            met = np.mean([r["realized_accuracy"] is None or r["realized_accuracy"] >= target for r in runs])
            acc = f"{np.mean(accs):.3f} / {min(accs):.3f}" if accs else "- (nothing automated)"
            print(f"| {name} | {len(texts):,} | {correct.mean():.3f} | {target} | {rate:.1%} | {acc} | {met:.0%} |",
                  flush=True)
        print(f"<!-- {name}: out-of-fold probabilities in {seconds:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
