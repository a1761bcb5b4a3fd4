"""The PyTorch reference of `vs_pytorch.py`: Garg et al.'s model and training step, timed in a
process of its own with PyTorch's default settings.

    python benchmarks/torch_reference.py --case small --steps 40            # eager
    python benchmarks/torch_reference.py --case paper --steps 2 --compile   # torch.compile

The model is Garg et al.'s `TransformerModel` (github.com/dtsip/in-context-learning,
src/models.py): a linear read-in of interleaved d-wide tokens (x tokens `x`, y tokens
`[y, 0, ..., 0]`), HF `GPT2Model` fed `inputs_embeds` (dropout 0, no cache), a linear read-out,
predictions read at the x tokens. Their training step (src/train.py): a fresh batch every step
(`torch.randn` inputs and weights, `ys = xs @ w`), MSE, `zero_grad`, `backward`, Adam `step`.

Nothing here touches threads: no `torch.set_num_threads`, no OpenMP variables; the process
inherits the caller's environment as a user's script would. Prints one JSON line: steps/s of
the timed window after `--warmup` steps (which include `torch.compile`'s compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from transformers import GPT2Config, GPT2Model

# name -> (d, points, layers, width, heads, batch, lr): the shapes of vs_pytorch.py's cases.
SHAPES = {
    "small": (5, 11, 4, 64, 2, 64, 6e-3),
    "paper": (20, 41, 12, 256, 8, 64, 1e-4),
}


class TransformerModel(torch.nn.Module):
    """Garg et al.'s model (src/models.py), dropout 0 as in their configs."""

    def __init__(self, n_dims, n_positions, n_embd=128, n_layer=12, n_head=4):
        super().__init__()
        configuration = GPT2Config(n_positions=2 * n_positions, n_embd=n_embd, n_layer=n_layer,
                                   n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                                   attn_pdrop=0.0, use_cache=False)
        self.n_positions, self.n_dims = n_positions, n_dims
        self._read_in = torch.nn.Linear(n_dims, n_embd)
        self._backbone = GPT2Model(configuration)
        self._read_out = torch.nn.Linear(n_embd, 1)

    @staticmethod
    def _combine(xs_b, ys_b):
        """Interleaves the x's and the y's into a single sequence."""
        bsize, points, dim = xs_b.shape
        ys_b_wide = torch.cat((ys_b.view(bsize, points, 1),
                               torch.zeros(bsize, points, dim - 1, device=ys_b.device)), axis=2)
        zs = torch.stack((xs_b, ys_b_wide), dim=2)
        return zs.view(bsize, 2 * points, dim)

    def forward(self, xs, ys):
        zs = self._combine(xs, ys)
        embeds = self._read_in(zs)
        output = self._backbone(inputs_embeds=embeds).last_hidden_state
        prediction = self._read_out(output)
        return prediction[:, ::2, 0]  # predict only on xs


def sample(batch, points, d):
    """Garg et al.'s GaussianSampler and LinearRegression task: a fresh batch."""
    xs = torch.randn(batch, points, d)
    w = torch.randn(batch, d, 1)
    return xs, (xs @ w)[:, :, 0]


def train_step(model, xs, ys, optimizer):
    """src/train.py's step, with their MSE (`(ys_pred - ys).square().mean()`)."""
    optimizer.zero_grad()
    output = model(xs, ys)
    loss = (output - ys).square().mean()
    loss.backward()
    optimizer.step()
    return loss.detach().item()


def build(case: str, compiled: bool):
    """(model as called, optimizer, batch shape, attention implementation)."""
    d, points, layers, width, heads, batch, lr = SHAPES[case]
    torch.manual_seed(0)
    model = TransformerModel(d, points, width, layers, heads)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    attention = model._backbone.config._attn_implementation
    return (torch.compile(model) if compiled else model), optimizer, (batch, points, d), attention


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=list(SHAPES), default="small")
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--compile", action="store_true", help="torch.compile(model)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, optimizer, shape, attention = build(args.case, args.compile)
    for _ in range(args.warmup):
        train_step(model, *sample(*shape), optimizer)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, *sample(*shape), optimizer)
    seconds = time.perf_counter() - start
    print(json.dumps({"steps_per_s": args.steps / seconds, "warmup_s": warm_s,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "attention": attention, "compiled": args.compile,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
