"""This project's training update against an eager PyTorch GPT-2 training step, at equal work.

    pip install -e ".[bench]"          # torch (CPU) and transformers
    python benchmarks/vs_pytorch.py                      # small, paper config, quickstart
    python benchmarks/vs_pytorch.py --cases small --repeats 7

The reference is what a researcher would write with Garg et al.'s recipe: HF `GPT2Model` as the
backbone fed `inputs_embeds`, a linear read-in from interleaved tokens `[x, 0]`, `[0, y]` and a
linear read-out, Adam, MSE on the predictions read at the x tokens, a fresh batch sampled on the
host every step, no dropout. Both sides do the same work per timing: the same batch, the same
number of optimizer steps (for JAX, steps inside one scanned, jitted call; for PyTorch, that
many eager steps), data sampling included. Timings alternate JAX and PyTorch calls in one
process so that a shared machine's load weighs on both alike; each side keeps its best call.
"""

from __future__ import annotations

import os

from icl_regression.train.mesh import DataParallel, cpu_device_count, host_cores

# One fake CPU device per core, as the training app splits the host (mesh.cpu_devices=0), so
# that the default engine and the engine before that split (1 device, no remat) run in one
# process; OpenMP threads sleep instead of spinning when they wait, or on a shared machine
# PyTorch's 2-thread step collapses (measured here: 0.14-0.28 steps/s against 4-6 with this).
# Both are set before JAX starts its backends and before torch is imported; the environment
# wins.
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={host_cores()}")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import setup  # noqa: E402

from icl_regression.cli import compose_train_or_fail as compose  # noqa: E402

# name -> (Hydra overrides of the JAX side, steps per timed call)
CASES = {
    # y as the loss target on both sides: the reference fits the labels (equal work).
    # small: the shape (2 heads, the quickstart's before it moved to 4).
    "small": (["preset=quickstart", "model.encoding=interleaved", "model.n_head=2",
               "loss_target=labels"], 40),
    "paper": (["preset=garg_linear"], 2),
    "quickstart": (["preset=quickstart", "loss_target=labels"], 40),
}


class TorchGPT:
    """Read-in -> GPT2Model(inputs_embeds) -> read-out, on interleaved tokens; Adam; MSE."""

    def __init__(self, d: int, n_points: int, n_layer: int, width: int, n_head: int, lr: float):
        import torch
        from transformers import GPT2Config, GPT2Model

        torch.manual_seed(0)
        config = GPT2Config(n_positions=2 * n_points, n_embd=width, n_layer=n_layer,
                            n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            use_cache=False)
        self.backbone = GPT2Model(config)
        self.read_in = torch.nn.Linear(d + 1, width)
        self.read_out = torch.nn.Linear(width, 1)
        params = [*self.backbone.parameters(), *self.read_in.parameters(),
                  *self.read_out.parameters()]
        self.opt = torch.optim.Adam(params, lr=lr)
        self.d, self.n_points = d, n_points
        self.attention = self.backbone.config._attn_implementation

    def step(self, batch_size: int) -> None:
        """One optimizer step on a fresh batch: xs (B, n, d), w (B, d, 1), ys (B, n)."""
        import torch

        xs = torch.randn(batch_size, self.n_points, self.d)
        ys = (xs @ torch.randn(batch_size, self.d, 1))[..., 0] / self.d**0.5  # (B, n)
        x_tok = torch.cat([xs, torch.zeros(batch_size, self.n_points, 1)], -1)  # (B, n, d+1)
        y_tok = torch.cat([torch.zeros_like(xs), ys[..., None]], -1)  # (B, n, d+1)
        toks = torch.stack([x_tok, y_tok], 2).reshape(batch_size, 2 * self.n_points, -1)
        h = self.backbone(inputs_embeds=self.read_in(toks)).last_hidden_state  # (B, 2n, D)
        preds = self.read_out(h)[:, ::2, 0]  # (B, n): read at the x tokens
        loss = torch.nn.functional.mse_loss(preds, ys)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def run(self, batch_size: int, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step(batch_size)


def jax_side(overrides: list[str], n_steps: int, n_devices: int | None, unroll: bool):
    """(compiled n-step update as a no-argument callable, config, devices used); n_devices
    None: as many as the training app would use."""
    cfg = compose(overrides)
    n_devices = n_devices or cpu_device_count(cfg.mesh, cfg.batch_size, jax.device_count())
    parallel = DataParallel.create(devices=jax.devices()[:n_devices])
    update, params, opt_state, _ = setup(cfg, parallel, unroll_layers=unroll)
    compiled = update.lower(params, opt_state, 0, n_steps, cfg.task.n_points).compile()
    call = lambda: jax.block_until_ready(compiled(params, opt_state, 0))
    call()  # warm-up
    return call, cfg, parallel.n_devices


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(name: str, repeats: int, steps: int | None = None) -> dict:
    """This project's update as the training app runs it (the default), the engine before
    this version's defaults (1 device, no remat), and PyTorch, alternated."""
    overrides, default_steps = CASES[name]
    n_steps = steps or default_steps
    every, cfg, n_devices = jax_side(overrides, n_steps, None, unroll=False)
    one, _, _ = jax_side([*overrides, "model.remat=none"], n_steps, 1, unroll=False)
    m, t = cfg.model, cfg.task
    ref = TorchGPT(t.d, t.n_points, m.n_layer, m.d_model, m.n_head, cfg.optim.lr or 1e-4)
    ref.run(cfg.batch_size, 2)  # warm-up: allocator, first-call dispatch
    calls = {"one": one, "every": every, "torch": lambda: ref.run(cfg.batch_size, n_steps)}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):  # alternate, so that load changes hit every side
        for side, call in calls.items():
            best[side] = min(best[side], timed(call))
    row = {"config": name, "d": t.d, "points": t.n_points, "layers": m.n_layer,
           "width": m.d_model, "heads": m.n_head, "encoding": m.encoding,
           "batch": cfg.batch_size, "steps": n_steps, "devices": n_devices,
           "attention": ref.attention, **{side: n_steps / b for side, b in best.items()}}
    row["ratio"], row["ratio_every"] = row["one"] / row["torch"], row["every"] / row["torch"]
    print(row, file=sys.stderr, flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| config | shape | JAX tokens | JAX steps/s: default (CPU devices) / before "
             "(1 device, no remat) | PyTorch steps/s (interleaved) | ratio: default / before "
             "| steps per timing |", "|" + " --- |" * 7]
    for r in rows:
        shape = (f"d={r['d']}, {r['points']} points, {r['layers']} × {r['width']}, "
                 f"{r['heads']} heads, batch {r['batch']}")
        lines.append(f"| {r['config']} | {shape} | {r['encoding']} | {r['every']:.3g} "
                     f"({r['devices']}) / {r['one']:.3g} | {r['torch']:.3g} | "
                     f"**{r['ratio_every']:.2f}×** / {r['ratio']:.2f}× | {r['steps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (best kept)")
    parser.add_argument("--steps", type=int, help="steps per timed call (default per case)")
    args = parser.parse_args(argv)
    torch.set_num_threads(host_cores())  # XLA's CPU thread pool has one thread per schedulable core
    load = os.getloadavg()[0]
    rows = [compare(name, args.repeats, args.steps) for name in args.cases]
    print(f"threads: PyTorch {torch.get_num_threads()} (torch {torch.__version__}, attention "
          f"{rows[0]['attention']}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), "
          f"XLA CPU pool {host_cores()} shared by the JAX devices (jax {jax.__version__}); "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}; "
          f"load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(markdown(rows))


if __name__ == "__main__":
    main()
