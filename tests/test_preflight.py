"""Metrics check what they need before any training: a missing extractor file fails in seconds."""

import subprocess
import sys
import time


def test_missing_inception_weights_stop_the_run_before_training(tmp_path):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "anytime_bench", "run", "--feature-extractor", "inception-v3-compat", "--fid-weights",
         str(tmp_path / "weights-inception.pth"), "--out", str(tmp_path / "results"), "--run-id", "r"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"--fid-weights {tmp_path / 'weights-inception.pth'} does not exist" in result.stderr
    assert not (tmp_path / "results" / "r").exists()  # nothing was trained or written
    assert time.perf_counter() - started < 60


def test_unlabelled_data_cannot_use_the_classifier_extractor(tmp_path):
    from PIL import Image

    images = tmp_path / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (20, 24), (i * 40, 0, 0)).save(images / f"{i:06d}.jpg")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000000.jpg 0\n000001.jpg 0\n000002.jpg 2\n000003.jpg 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "anytime_bench", "run", "--dataset", "celeba", "--data-root", str(tmp_path),
         "--feature-extractor", "classifier", "--out", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "has no labels for the classifier feature extractor" in result.stderr
