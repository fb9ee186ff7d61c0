"""Automation with a guarantee on real labeled text: how much can a model label on its own?

    python benchmarks/automation.py [--draws 20] [--labeler minilm|tfidf]

For each data set (financial_phrasebank AllAgree, sms_spam, medical_abstracts from
<shared>/data/text, and snow_rte from <shared>/data/crowd with its ground truth), a labeler's
out-of-fold probabilities (5 folds, trained on ground truth of the other folds, as if humans had
labeled them) give each item a confidence. Then, over ``--draws`` random audits of 10% of the
items (at least 200), the policy of ``veritag.automation`` picks a threshold for targets 0.95
and 0.98 (delta 0.05), and the accuracy of auto-accepted items is measured on ground truth the
policy never saw (items outside the audit). Printed: the mean automation rate, the mean and the
worst realised accuracy, and the share of draws meeting the target (the guarantee asks >= 95%).

``--labeler minilm`` (the default) is the bundled all-MiniLM-L6-v2 embeddings + logistic
regression, each text embedded once (a shared cache across folds); ``tfidf`` the light TF-IDF
labeler. Embedding throughput against sentence-transformers is ``benchmarks/embedding.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from text_data import NAMES, load

from veritag.automation import simulate
from veritag.labelers import out_of_fold_proba
from veritag.labelers.registry import DEFAULT_LABELER, LABELER_NAMES, labeler_factory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--draws", type=int, default=20, help="random audits per data set and target"
    )
    parser.add_argument("--labeler", default=DEFAULT_LABELER, choices=LABELER_NAMES)
    args = parser.parse_args()
    print(
        "| data set | items | labeler accuracy | target | automation rate | realised accuracy "
        "(mean / worst) | draws meeting target |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in NAMES:
        texts, labels = load(name)
        classes = sorted(set(labels))
        t = time.perf_counter()
        make = labeler_factory(args.labeler)
        probs = out_of_fold_proba(make, texts, np.asarray(labels, dtype=object), classes=classes)
        seconds = time.perf_counter() - t
        correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(
            labels, dtype=object
        )
        conf = probs.max(axis=1)
        audit = min(len(texts), max(200, len(texts) // 10))
        for target in (0.95, 0.98):
            runs = [
                simulate(conf, correct, audit_size=audit, target=target, delta=0.05, rng=seed)
                for seed in range(args.draws)
            ]
            rate = np.mean([r["automation_rate"] for r in runs])
            accs = [r["realized_accuracy"] for r in runs if r["realized_accuracy"] is not None]
            met = np.mean(
                [r["realized_accuracy"] is None or r["realized_accuracy"] >= target for r in runs]
            )
            acc = f"{np.mean(accs):.3f} / {min(accs):.3f}" if accs else "- (nothing automated)"
            print(
                f"| {name} | {len(texts):,} | {correct.mean():.3f} | {target} | {rate:.1%} | {acc} "
                f"| {met:.0%} |",
                flush=True,
            )
        print(
            f"<!-- {name}: {make().name}@{make().version}, out-of-fold probabilities in "
            f"{seconds:.1f} s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
