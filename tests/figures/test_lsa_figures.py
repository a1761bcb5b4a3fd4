"""The LSA figures draw from lsa_numbers.json alone, byte-identically, in the project style."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from icl_regression.figures.lsa import save_lsa_figures  # noqa: E402

CURVE = [{"step": s, "loss": 1 / (1 + s), "cosine": s / 10, "l2": 1 - s / 10,
          "l2_rel": 1 - s / 10} for s in range(0, 10, 3)]
NUMBERS = {
    "single": {"curve": CURVE, "train_curve": [[s, 1 / (1 + s)] for s in range(1, 10)],
               "gd_loss": 0.5, "eta": 0.15, "alphas": [0.0, 0.5, 1.0],
               "interpolation": [0.51, 0.505, 0.5]},
    "depth": [{"depth": k, "untied": 1 / k, "untied_median": 0.5 / k, "gd": 1.1 / k,
               "gd_median": 0.6 / k, "gd_pp": 0.9 / k, "gd_pp_median": 0.4 / k, "tied": None}
              for k in (1, 2, 3)],
}


def inked(path) -> float:
    """Share of pixels that are not near-white."""
    return float(np.mean(imread(path)[..., :3].min(axis=-1) < 0.9))


def test_lsa_figures_draw_and_are_byte_identical(tmp_path):
    first = save_lsa_figures(NUMBERS, tmp_path / "a", dpi=60)
    second = save_lsa_figures(NUMBERS, tmp_path / "b", dpi=60)
    assert [p.name for p in first] == ["lsa_loss_curve.png", "lsa_sensitivity.png",
                                      "lsa_interpolation.png", "lsa_depth.png"]
    for a, b in zip(first, second, strict=True):
        assert inked(a) > 0.02, a.name
        assert a.read_bytes() == b.read_bytes()
