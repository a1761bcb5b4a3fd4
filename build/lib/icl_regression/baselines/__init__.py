"""Reference algorithms, each a predictor with the model's signature.

`get_baseline(name, **params)` returns `predict(xs (B, n, d), ys (B, n)) -> preds (B, n)` where
`preds[:, i]` uses only the pairs `0..i-1` and the query `xs[:, i]`. Everything is batched over
prompts and all prefix lengths at once (no Python loop over either), float32 with
`Precision.HIGHEST` wherever a matmul appears (accelerators would otherwise use TF32/bf16).

| name       | params                        | prediction at position i                           |
| ---------- | ----------------------------- | -------------------------------------------------- |
| zero       |                               | 0                                                  |
| averaging  |                               | x_i · b_i / i                                      |
| ols        |                               | x_i · X_i⁺ y_i (min-norm, any rank)                |
| ridge      | lam                           | x_i · (S_i + λI)⁻¹ b_i  (lam=0 is ols)             |
| gd         | eta (scalar or (n,)), steps   | `steps` of GD from w = 0; one step is η b_i        |
| knn        | k                             | mean y of the k nearest context x (ties: earliest) |
| lasso      | alpha, iters                  | FISTA on ½Σ(w·x_j − y_j)² + α‖w‖₁                  |
| dmmse      | pool (M, d), noise_std        | posterior mean of w·x_i over the pool              |
| newton     | steps                         | Newton–Schulz M ← 2M − MSM from S/‖S‖₂², x_i·M b_i |
| cg         | steps                         | `steps` conjugate-gradient steps on S w = b from 0 |
| online_gd  | eta, passes                   | passes over the prefix, one example per step       |
| logistic   | lam, iters                    | tanh(w·x_i / 2), w: L2 logistic regression (Newton)|
| nn_gd      | hidden, steps, lr, seed       | a two-layer ReLU net fitted by Adam, at x_i        |
| tree       | max_depth (None: unlimited)   | CART (scikit-learn), extra `trees`                 |
| xgboost    | n_estimators, max_depth, ...  | gradient-boosted trees (xgboost), extra `trees`    |
| mixture_bayes | noise_stds, w_scale        | posterior mean with σ uniform over noise_stds      |

with `S_i = Σ_{j<i} x_j x_jᵀ`, `b_i = Σ_{j<i} y_j x_j`. The linear ones also give their per-prefix
weights via `get_weights(name, **params)` (or the solvers `ols_weights`, `ridge_weights`,
`gd_weights`, `lasso_weights` directly), `ws (B, n, d)` with `ws[:, i]` fitted on pairs 0..i-1.
Every iteration count of newton, gd, cg, online_gd at once: `baselines.iterative`.
"""

from icl_regression.baselines.dmmse import DEFAULT_DMMSE_NOISE_STD, dmmse_predict
from icl_regression.baselines.host import MissingExtra
from icl_regression.baselines.knn import knn_predict
from icl_regression.baselines.linear import averaging_weights, tune_gd_eta, zero_weights
from icl_regression.baselines.registry import (
    BASELINES,
    PREDICTOR_SETS,
    Predictor,
    PredictorSet,
    SuiteContext,
    get_baseline,
    get_weights,
    predict_with_weights,
    register_baseline,
)
from icl_regression.registry import import_submodules

__all__ = ["BASELINES", "DEFAULT_DMMSE_NOISE_STD", "MissingExtra", "PREDICTOR_SETS", "Predictor",
           "PredictorSet", "SuiteContext", "averaging_weights", "dmmse_predict", "get_baseline",
           "get_weights", "knn_predict", "predict_with_weights", "register_baseline",
           "tune_gd_eta", "zero_weights"]

# Every module of this package registers its baselines on import: a new baseline is one new
# file here (or in a plugin), found by being there.
import_submodules(__name__, skip=("registry", "solvers", "host"))
