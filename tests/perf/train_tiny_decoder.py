"""Train the tiny decoder of the tests on the standard library's Python sources (characters).

Writes ``tests/data/tiny_decoder.npz``: the weights under the names
:mod:`tests.decoders` builds its ONNX graph from, as FP16 to stay small, plus
its shape and the character vocabulary. The same architecture as the ONNX
builder (pre-LN GPT blocks, sigmoid-GELU), so the exported graph computes what
was trained; ``tests/integration/test_decoders.py`` checks its greedy
next-character accuracy on held-out text.

Needs torch (the ``perf`` extra: ``pip install torch==2.13.0``); the package and
the default test suite never import it. About a minute on 2 cores:

    python tests/perf/train_tiny_decoder.py [--seconds 60] [--out tests/data/tiny_decoder.npz]
"""

from __future__ import annotations

import argparse
import math
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.decoders import ALPHABET, HELD_OUT, TRAINED_WEIGHTS, DecoderShape  # noqa: E402

CORPUS_FILES = ("functools.py", "collections/__init__.py", "dataclasses.py", "pathlib.py", "argparse.py")


def corpus_text(names: tuple[str, ...]) -> str:
    lib = Path(sysconfig.get_paths()["stdlib"])
    return "".join((lib / name).read_text(encoding="utf-8") for name in names)


def encode(text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(ALPHABET)}
    unknown = index["?"]
    return np.array([index.get(c, unknown) for c in text], np.int64)


class Block(nn.Module):
    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        d = shape.hidden
        self.heads = shape.heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(batch, seq, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(2, 3) / math.sqrt(d // self.heads)
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, -1e4)
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, d)
        x = x + self.o(ctx)
        f = self.fc(self.ln2(x))
        return x + self.proj(f * torch.sigmoid(1.702 * f))


class TinyDecoder(nn.Module):
    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        self.wte = nn.Embedding(shape.vocab, shape.hidden)
        self.wpe = nn.Embedding(shape.context, shape.hidden)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.layers))
        self.lnf = nn.LayerNorm(shape.hidden, eps=1e-5)
        self.head = nn.Linear(shape.hidden, shape.vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.lnf(x))


def exported(model: TinyDecoder) -> dict[str, np.ndarray]:
    """The weights under :mod:`tests.decoders`' names (Linear weights transposed to [in, out])."""

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy().astype(np.float32)

    weights = {"wte": arr(model.wte.weight), "wpe": arr(model.wpe.weight)}
    for i, block in enumerate(model.blocks):
        p = f"h{i}."
        weights |= {
            p + "ln1_g": arr(block.ln1.weight),
            p + "ln1_b": arr(block.ln1.bias),
            p + "w_qkv": arr(block.qkv.weight.T),
            p + "b_qkv": arr(block.qkv.bias),
            p + "w_o": arr(block.o.weight.T),
            p + "b_o": arr(block.o.bias),
            p + "ln2_g": arr(block.ln2.weight),
            p + "ln2_b": arr(block.ln2.bias),
            p + "w_fc": arr(block.fc.weight.T),
            p + "b_fc": arr(block.fc.bias),
            p + "w_proj": arr(block.proj.weight.T),
            p + "b_proj": arr(block.proj.bias),
        }
    weights |= {
        "lnf_g": arr(model.lnf.weight),
        "lnf_b": arr(model.lnf.bias),
        "w_head": arr(model.head.weight.T),
    }
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=TRAINED_WEIGHTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = DecoderShape(layers=2, hidden=64, heads=4, vocab=len(ALPHABET), context=128)
    data = torch.from_numpy(encode(corpus_text(CORPUS_FILES)))
    held_out = torch.from_numpy(encode(corpus_text((HELD_OUT,))))
    model = TinyDecoder(shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    window, batch = shape.context, 32
    started, step = time.monotonic(), 0
    while time.monotonic() - started < args.seconds:
        starts = torch.randint(0, len(data) - window - 1, (batch,))
        x = torch.stack([data[s : s + window] for s in starts])
        y = torch.stack([data[s + 1 : s + window + 1] for s in starts])
        loss = nn.functional.cross_entropy(model(x).reshape(-1, shape.vocab), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    with torch.no_grad():
        x = held_out[: (len(held_out) // window) * window].view(-1, window)[:16]
        predicted = model(x[:, :-1]).argmax(-1)
        accuracy = (predicted == x[:, 1:]).float().mean().item()
    print(
        f"{step} steps in {time.monotonic() - started:.0f} s; held-out greedy next-char accuracy "
        f"{accuracy:.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    halves = {name: value.astype(np.float16) for name, value in exported(model).items()}
    layout = np.array([shape.layers, shape.hidden, shape.heads, shape.vocab, shape.context], np.int64)
    np.savez_compressed(args.out, shape=layout, **halves)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
