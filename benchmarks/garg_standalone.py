"""A plain PyTorch script of Garg et al.'s model and training loop, nothing else: the yardstick
`vs_pytorch.py` checks its reference against (same model, same machine, same minute).

    python benchmarks/garg_standalone.py small 40     # case, timed steps; prints steps/s

Self-contained on purpose (no import from this repository, no thread or environment settings):
what a user would paste from github.com/dtsip/in-context-learning and time.
"""

import sys
import time

import torch
from transformers import GPT2Config, GPT2Model

case = sys.argv[1] if len(sys.argv) > 1 else "small"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 40
d, points, layers, width, heads = {"small": (5, 11, 4, 64, 2), "paper": (20, 41, 12, 256, 8)}[case]
batch = 64


class TransformerModel(torch.nn.Module):
    def __init__(self, n_dims, n_positions, n_embd, n_layer, n_head):
        super().__init__()
        config = GPT2Config(n_positions=2 * n_positions, n_embd=n_embd, n_layer=n_layer,
                            n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            use_cache=False)
        self._read_in = torch.nn.Linear(n_dims, n_embd)
        self._backbone = GPT2Model(config)
        self._read_out = torch.nn.Linear(n_embd, 1)

    def forward(self, xs, ys):
        b, n, dim = xs.shape
        ys_wide = torch.cat((ys.view(b, n, 1), torch.zeros(b, n, dim - 1)), axis=2)
        zs = torch.stack((xs, ys_wide), dim=2).view(b, 2 * n, dim)
        out = self._backbone(inputs_embeds=self._read_in(zs)).last_hidden_state
        return self._read_out(out)[:, ::2, 0]


model = TransformerModel(d, points, width, layers, heads)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)


def step():
    xs = torch.randn(batch, points, d)
    ys = (xs @ torch.randn(batch, d, 1))[:, :, 0]
    optimizer.zero_grad()
    loss = (model(xs, ys) - ys).square().mean()
    loss.backward()
    optimizer.step()
    return loss.item()


for _ in range(2):  # warm-up
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(f"{steps / (time.perf_counter() - start):.4f} steps/s")
