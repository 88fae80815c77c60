"""Fig. 9 uncertainty grids and Fig. 8 t-SNE pictures from a trained trial."""

import numpy as np
import pytest
from PIL import Image

from dragsaw.workloads.pictures import hidden_vectors, tsne_figure, uncertainty_grid
from dragsaw.workloads.recipe import Trial


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    from dragsaw.workloads.data.synthetic import write_isic2016

    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=8, n_test=3, size=(72, 96), seed=1)
    t = Trial({"data": {"name": "isic2016", "root": str(root)}, "model": {"name": "unet", "width": 0.125},
               "plugins": {"uafr": {"layers": ["encoder.2", "decoder.1"]},
                           "pdcr": {"sites": [{"layers": ["encoder.2"], "n": 16}]}},
               "train": {"epochs": 1, "batch_size": 4, "image_size": (64, 64)},
               "cache_dir": str(tmp_path_factory.mktemp("cache"))})
    t.run()
    return t


def test_uncertainty_grid_png(trial, tmp_path):
    out = uncertainty_grid(trial.model, trial.plugins, trial.cache, trial.eval_ids[:2], "encoder.2", tmp_path / "fig9.png")
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[0] > 100 and image.shape[1] > 300 and image.std() > 10  # a real picture, not blank
    with pytest.raises(ValueError, match="has no UAFR block"):
        uncertainty_grid(trial.model, trial.plugins, trial.cache, trial.eval_ids[:1], "encoder.3", tmp_path / "x.png")


def test_hidden_vectors_and_tsne(trial, tmp_path):
    path = trial.plugins.paths["encoder.2"]
    vectors, classes = hidden_vectors(trial.model, path, trial.cache, trial.eval_ids, per_case=20)
    assert vectors.shape[0] == classes.shape[0] == 3 * 20 and vectors.ndim == 2
    assert set(np.unique(classes)) <= {0, 1}
    out = tsne_figure({"without PDCR": (vectors, classes), "with PDCR": (vectors * 2, classes)},
                      ["background", "lesion"], tmp_path / "fig8.png")
    assert np.asarray(Image.open(out).convert("L")).std() > 5
