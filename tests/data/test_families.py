"""Each task family against a NumPy construction from the same keys, and its scale's statistics."""

import dataclasses

import jax
import numpy as np
import pytest

from icl_regression.config import ConfigError, TaskConfig, validate
from icl_regression.data import families, tasks
from icl_regression.data.families import FAMILIES, sample_family

KEY = jax.random.key(3)
ALL = ("linear", "sparse_linear", "noisy_linear", "linear_classification", "quadratic",
       "relu2nn", "decision_tree", "noise_mixture", "mixture")


def task_of(family, **kw):
    extra = {"sparse_linear": {"w_prior": "sparse", "sparsity": 2},
             "noisy_linear": {"noise_std": 0.5},
             "noise_mixture": {"noise_stds": (0.1, 0.5, 1.0)},
             "mixture": {"components": ("linear", "relu2nn")}}.get(family, {})
    return TaskConfig(family=family, **{**extra, **kw})


def raw_draws(task, batch, key=KEY):
    """The x and w draws every w·x family shares, re-derived from the key (float64)."""
    x_key, w_key, noise_key = jax.random.split(key, 3)
    xs = np.asarray(jax.random.normal(x_key, (batch, task.n_points, task.d)), np.float64)
    z_key, _ = jax.random.split(w_key)
    ws = np.asarray(jax.random.normal(z_key, (batch, task.d)), np.float64) / np.sqrt(task.d)
    eps = np.asarray(jax.random.normal(noise_key, (batch, task.n_points)), np.float64)
    return xs, ws, eps, w_key, noise_key


def as64(sample):
    return [None if a is None else np.asarray(a, np.float64) for a in sample[:3]]


def test_registry_lists_every_family_with_distinct_streams():
    assert set(ALL) <= set(FAMILIES)
    assert len({FAMILIES.stream_id(name) for name in FAMILIES}) == len(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES.names())  # a new family is tested by registering it
def test_every_family_jits_in_the_train_step_with_a_curriculum(family):
    task = task_of(family, d=4, n_points=7)
    xs, ys, ws = jax.jit(tasks.train_batch, static_argnums=(2, 3))(0, 5, task, 6, 2)
    assert xs.shape == (6, 7, 4) and ys.shape == (6, 7) and np.all(np.asarray(xs)[..., 2:] == 0)
    assert (ws is None) == (not families.family_of(task).has_w)
    assert np.all(np.isfinite(np.asarray(ys)))


@pytest.mark.parametrize("family", FAMILIES.names())
def test_every_family_declares_its_label_scale_and_oracles(family):
    """expected_y2 is the zero predictor's error (checked against 20,000 draws), and every
    component's oracle is a registered baseline with its parameters."""
    from icl_regression import baselines

    task = task_of(family, d=4, n_points=7)
    spec = families.family_of(task)
    sample = sample_family(KEY, task, 20_000)
    empirical = float(np.mean(np.asarray(sample.ys, np.float64) ** 2))
    assert empirical == pytest.approx(spec.expected_y2(task), rel=0.06)
    assert len(spec.oracle(task)) == max(1, len(spec.components(task)))
    for name, params in spec.oracle(task):
        baselines.get_baseline(name, **params)  # raises for an unknown name or parameter


def test_linear_is_the_old_sampler_bit_for_bit():
    task = TaskConfig(d=4, n_points=6, noise_std=0.3)
    x_key, w_key, noise_key = jax.random.split(KEY, 3)
    xs = jax.random.normal(x_key, (5, 6, 4), np.float32)
    ws = jax.random.normal(jax.random.split(w_key)[0], (5, 4), np.float32) * (1 / np.sqrt(4))
    ys = jax.numpy.einsum("bnd,bd->bn", xs, ws, precision=jax.lax.Precision.HIGHEST)
    ys = ys + 0.3 * jax.random.normal(noise_key, ys.shape, np.float32)
    got = tasks.sample_prompts(KEY, task, 5)
    for a, b in zip(got, (xs, ys, ws), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_linear_classification_labels_are_signs_of_w_x():
    task = task_of("linear_classification", d=5, n_points=9)
    xs, ys, ws = as64(sample_family(KEY, task, 4000))
    rxs, rws, _, _, _ = raw_draws(task, 4000)
    np.testing.assert_allclose(xs, rxs, rtol=1e-6)
    np.testing.assert_array_equal(ys, np.where(np.einsum("bnd,bd->bn", rxs, rws) >= 0, 1, -1))
    assert abs(ys.mean()) < 0.02 and tasks.expected_y2(task) == 1.0


@pytest.mark.parametrize("kw", [{}, {"x_dist": "uniform"}, {"w_mean": 1.0, "d": 3}])
def test_quadratic_labels_and_scale(kw):
    task = task_of("quadratic", **kw)
    xs, ys, ws = as64(sample_family(KEY, task, 8_000))
    if not kw:  # Gaussian x: Garg's 1/√3, exactly from the same draws
        rxs, rws, _, _, _ = raw_draws(task, 8_000)
        np.testing.assert_allclose(ys, np.einsum("bnd,bd->bn", rxs**2, rws) / np.sqrt(3),
                                   rtol=1e-4, atol=1e-5)
    lin = np.mean(np.einsum("bnd,bd->bn", xs, ws) ** 2)  # the linear family's E y², same draws
    np.testing.assert_allclose(np.mean(ys**2), lin, rtol=0.08)
    np.testing.assert_allclose(np.mean(ys**2), tasks.expected_y2(task), rtol=0.08)


@pytest.mark.parametrize("kw", [{}, {"x_dist": "uniform", "hidden_width": 7}])
def test_relu2nn_labels_and_scale(kw):
    task = task_of("relu2nn", **kw)
    _, ys, ws = as64(sample_family(KEY, task, 8_000))
    assert ws is None
    x_key, net_key, _ = jax.random.split(KEY, 3)
    xs = np.asarray(tasks.sample_xs(x_key, task, 8_000), np.float64)
    u_key, a_key = jax.random.split(net_key)
    h, d = task.hidden_width, task.d
    u = np.asarray(jax.random.normal(u_key, (8_000, h, d)), np.float64) / np.sqrt(d)
    a = np.asarray(jax.random.normal(a_key, (8_000, h)), np.float64) * np.sqrt(2 / h)
    ref = np.einsum("bnh,bh->bn", np.maximum(np.einsum("bnd,bhd->bnh", xs, u), 0), a)
    np.testing.assert_allclose(ys, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.mean(ys**2), 1.0, rtol=0.08)
    assert tasks.expected_y2(task) == pytest.approx(1.0, rel=1e-6)


def _route(x, coords, leaves, depth):
    node = 0
    for _ in range(depth):
        node = 2 * node + (2 if x[coords[node]] > 0 else 1)
    return leaves[node - len(coords)]


def test_decision_tree_routes_like_a_recursive_tree():
    task = task_of("decision_tree", d=4, n_points=8, tree_depth=3)
    xs, ys, _ = as64(sample_family(KEY, task, 200))
    _, tree_key, _ = jax.random.split(KEY, 3)
    c_key, leaf_key = jax.random.split(tree_key)
    coords = np.asarray(jax.random.randint(c_key, (200, 7), 0, 4))
    leaves = np.asarray(jax.random.normal(leaf_key, (200, 8)), np.float64)
    ref = [[_route(x, coords[b], leaves[b], 3) for x in xs[b]] for b in range(200)]
    np.testing.assert_allclose(ys, ref, rtol=1e-6)
    big = np.asarray(sample_family(KEY, task_of("decision_tree"), 8_000).ys, np.float64)
    np.testing.assert_allclose(np.mean(big**2), 1.0, rtol=0.08)
    assert max(len(np.unique(row)) for row in big[:, :]) <= 16


def test_noise_mixture_draws_sigma_per_prompt():
    task = task_of("noise_mixture", d=4, n_points=11)
    xs, ys, ws = as64(s := sample_family(KEY, task, 10_000))
    comp = np.asarray(jax.random.randint(jax.random.fold_in(KEY, tasks.COMPONENT_SALT),
                                         (10_000,), 0, 3))
    np.testing.assert_array_equal(np.asarray(s.component), comp)
    _, _, eps, _, _ = raw_draws(task, 10_000)
    sigma = np.array(task.noise_stds)[comp][:, None]
    np.testing.assert_allclose(ys, np.einsum("bnd,bd->bn", xs, ws) + sigma * eps, atol=1e-5)
    assert np.allclose(np.bincount(comp) / 10_000, 1 / 3, atol=0.02)
    np.testing.assert_allclose(np.mean(ys**2), tasks.expected_y2(task), rtol=0.03)
    single = dataclasses.replace(task, noise_stds=(0.5,))
    noisy = TaskConfig(family="noisy_linear", d=4, n_points=11, noise_std=0.5)
    for a, b in zip(tasks.sample_prompts(KEY, single, 8), tasks.sample_prompts(KEY, noisy, 8),
                    strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_mixture_takes_each_prompt_from_its_component_stream():
    task = task_of("mixture", components=("linear", "decision_tree"), component_weights=(3, 1))
    s = sample_family(KEY, task, 8_000)
    comp = np.asarray(s.component)
    assert abs(np.mean(comp == 0) - 0.75) < 0.015 and s.ws is None
    for c, name in enumerate(task.components):
        part = sample_family(jax.random.fold_in(KEY, FAMILIES.stream_id(name)),
                             dataclasses.replace(task, family=name), 8_000)
        rows = comp == c
        np.testing.assert_array_equal(np.asarray(s.ys)[rows], np.asarray(part.ys)[rows])
    np.testing.assert_allclose(np.mean(np.asarray(s.ys, np.float64) ** 2), 1.0, rtol=0.05)
    resolved = families.family_of(task)
    assert "tree" in resolved.baselines and "ols" in resolved.baselines and not resolved.has_w


@pytest.mark.parametrize("task, key", [
    (TaskConfig(family="cubic"), "task.family"),
    (TaskConfig(family="noise_mixture"), "task.noise_stds"),
    (TaskConfig(family="sparse_linear"), "task.w_prior"),
    (TaskConfig(family="mixture", components=("linear", "nope")), "task.components"),
    (TaskConfig(family="mixture", components=("linear",), component_weights=(1, 2)),
     "task.component_weights"),
    (TaskConfig(family="relu2nn", corrupt_fraction=0.2, corrupt_mode="other_w"),
     "task.corrupt_mode"),
])
def test_bad_family_parameters_name_the_key(task, key):
    from icl_regression.config import TrainConfig

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(TrainConfig(task=task))


@pytest.mark.parametrize("family", ALL)
def test_task_group_option_composes(family):
    from conftest import compose

    from icl_regression.config import to_dataclass

    cfg = validate(to_dataclass(compose([f"task={family}"])))
    assert cfg.task.family == family and hash(cfg.task)
