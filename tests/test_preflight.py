"""Metrics check what they need before any training: a missing extractor file fails in seconds."""

from .conftest import run_cli


def test_missing_inception_weights_stop_the_run_before_training(tmp_path):
    result = run_cli("run", "--feature-extractor", "inception-v3-compat", "--fid-weights",
                     tmp_path / "weights-inception.pth", "--out", tmp_path / "results", "--run-id", "r")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"--fid-weights {tmp_path / 'weights-inception.pth'} does not exist" in result.stderr
    assert not (tmp_path / "results" / "r").exists()  # stopped before anything was trained or written


def test_unlabelled_data_cannot_use_the_classifier_extractor(tmp_path):
    from PIL import Image

    images = tmp_path / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (20, 24), (i * 40, 0, 0)).save(images / f"{i:06d}.jpg")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000000.jpg 0\n000001.jpg 0\n000002.jpg 2\n000003.jpg 2\n")
    result = run_cli("run", "--dataset", "celeba", "--data-root", tmp_path, "--feature-extractor", "classifier",
                     "--out", tmp_path / "results")
    assert result.returncode == 2, result.stderr
    assert "has no labels for the classifier feature extractor" in result.stderr
