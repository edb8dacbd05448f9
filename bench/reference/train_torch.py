"""PyTorch reference: one diffusion training step, as bench/train_bench.ts times it in diffprobe.

The step is the one `trainDiffusion` runs: a batch of 32 from the data, a timestep per sample
drawn uniformly from [0, 1000), Gaussian noise, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise,
the UNet's noise prediction in training mode (dropout active), MSE against the noise, backward,
gradient clipping to global norm 1, AdamW (lr 1e-4, weight decay 0) and an EMA update of the
weights. PyTorch runs on the CPU with 2 intra-op threads (the machine has 2 cores).

The UNet is built in plain torch (diffusers is not installable here) with diffusers' module
names and forward code paths, for images (`UNet2DModel`: Conv2d, F.interpolate) and for
signals (the same blocks with Conv1d, as diffprobe's 1-D UNet mirrors the 2-D one). `--check`
loads the tiny diffusers-made fixture and compares the noise prediction with diffusers' output.

Usage (from the repository root, with the project's venv):
  .venv/bin/python bench/reference/train_torch.py --model wave --steps 8
  .venv/bin/python bench/reference/train_torch.py --model cifar-small --steps 4
  .venv/bin/python bench/reference/train_torch.py --check tests/fixtures/tiny-unet2d \
      tests/fixtures/tiny-unet2d-parity-t500.safetensors

Each measurement prints one JSON line: {"model", "params", "batch", "threads", "ms": [..],
"median_ms"}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

WAVE_1D = {
    "_class_name": "DiffprobeUNet1DModel",
    "in_channels": 1,
    "out_channels": 1,
    "sample_size": 128,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 2,
    "norm_num_groups": 8,
    "dropout": 0.1,
    "down_block_types": ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"],
    "up_block_types": ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"],
}

CIFAR_SMALL_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                                "ddpm-cifar10-small", "config.json")

# The ddpm-cifar10-small configuration, used when ../shared is absent.
CIFAR_SMALL = {
    "_class_name": "UNet2DModel",
    "block_out_channels": [64, 128, 128, 128],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
    "downsample_padding": 0,
    "dropout": 0.1,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "out_channels": 3,
    "sample_size": 32,
}


def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class Resnet(nn.Module):
    """diffusers' ResnetBlock2D (time_embedding_norm "default"); Conv1d for signals."""

    def __init__(self, dims, cin, cout, temb, groups, eps, dropout, scale=1.0):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.dims = dims
        self.scale = scale
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = conv(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(cout, cout, 3, padding=1)
        self.act = nn.SiLU()
        self.conv_shortcut = conv(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(self.act(self.norm1(x)))
        t = self.time_emb_proj(self.act(temb))
        h = h + (t[:, :, None, None] if self.dims == 2 else t[:, :, None])
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.scale


class Attention(nn.Module):
    """diffusers' Attention (AttnProcessor2_0) over all positions."""

    def __init__(self, c, heads, groups, eps, rescale=1.0):
        super().__init__()
        self.heads = heads
        self.rescale = rescale
        self.group_norm = nn.GroupNorm(groups, c, eps=eps)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        shape = x.shape
        b, c = shape[0], shape[1]
        h = self.group_norm(x.reshape(b, c, -1)).transpose(1, 2)
        q, k, v = (f(h).view(b, -1, self.heads, c // self.heads).transpose(1, 2)
                   for f in (self.to_q, self.to_k, self.to_v))
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, c)
        h = self.to_out[0](h).transpose(1, 2).reshape(shape)
        return (h + x) / self.rescale


class Downsample(nn.Module):
    def __init__(self, dims, c, padding):
        super().__init__()
        self.dims = dims
        self.padding = padding
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv1d)(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1) if self.dims == 2 else (0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dims, c):
        super().__init__()
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv1d)(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, dims, cin, cout, temb, layers, groups, eps, dropout, down, pad, attn,
                 head_dim):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(dims, cin if i == 0 else cout, cout, temb, groups,
                                             eps, dropout) for i in range(layers)])
        self.attentions = nn.ModuleList([Attention(cout, cout // head_dim, groups, eps)
                                         for _ in range(layers)]) if attn else None
        self.downsamplers = nn.ModuleList([Downsample(dims, cout, pad)]) if down else None

    def forward(self, x, temb):
        outs = []
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
            outs.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            outs.append(x)
        return x, outs


class UpBlock(nn.Module):
    def __init__(self, dims, cin, prev, cout, temb, layers, groups, eps, dropout, up, attn,
                 head_dim):
        super().__init__()
        self.resnets = nn.ModuleList([
            Resnet(dims, (prev if i == 0 else cout) + (cin if i == layers - 1 else cout), cout,
                   temb, groups, eps, dropout) for i in range(layers)])
        self.attentions = nn.ModuleList([Attention(cout, cout // head_dim, groups, eps)
                                         for _ in range(layers)]) if attn else None
        self.upsamplers = nn.ModuleList([Upsample(dims, cout)]) if up else None

    def forward(self, x, skips, temb):
        for i, r in enumerate(self.resnets):
            x = r(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, dims, c, temb, groups, attn_groups, eps, dropout, scale, head_dim, attn):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(dims, c, c, temb, groups, eps, dropout, scale)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList(
            [Attention(c, c // head_dim, attn_groups, eps, scale)] if attn else [])

    def forward(self, x, temb):
        x = self.resnets[0](x, temb)
        for a in self.attentions:
            x = a(x)
        return self.resnets[1](x, temb)


class UNet(nn.Module):
    """diffusers' UNet2DModel; with a DiffprobeUNet1DModel config, its 1-D twin."""

    def __init__(self, cfg):
        super().__init__()
        dims = 2 if cfg.get("_class_name", "UNet2DModel") == "UNet2DModel" else 1
        ch = cfg["block_out_channels"]
        groups = cfg.get("norm_num_groups", 32)
        eps = cfg.get("norm_eps", 1e-5)
        head = cfg.get("attention_head_dim")
        layers = cfg.get("layers_per_block", 2)
        dropout = cfg.get("dropout", 0.0)
        temb = cfg.get("time_embedding_dim") or ch[0] * 4
        suffix = f"{dims}D"
        self.flip = cfg.get("flip_sin_to_cos", True)
        self.shift = cfg.get("freq_shift", 0)
        self.ch0 = ch[0]
        self.conv_in = (nn.Conv2d if dims == 2 else nn.Conv1d)(cfg.get("in_channels", 3), ch[0], 3,
                                                               padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            cin, out = out, ch[i]
            self.down_blocks.append(DownBlock(
                dims, cin, out, temb, layers, groups, eps, dropout, i < len(ch) - 1,
                cfg.get("downsample_padding", 1), kind == f"AttnDownBlock{suffix}", head or out))
        self.mid_block = MidBlock(dims, ch[-1], temb, groups,
                                  cfg.get("attn_norm_num_groups") or groups, eps, dropout,
                                  cfg.get("mid_block_scale_factor", 1), head or ch[-1],
                                  cfg.get("add_attention", True))
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(ch))
        out = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out = out, rev[i]
            self.up_blocks.append(UpBlock(
                dims, rev[min(i + 1, len(ch) - 1)], prev, out, temb, layers + 1, groups, eps,
                dropout, i < len(ch) - 1, kind == f"AttnUpBlock{suffix}", head or out))
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = (nn.Conv2d if dims == 2 else nn.Conv1d)(ch[0], cfg.get("out_channels", 3),
                                                                3, padding=1)

    def forward(self, x, t):
        emb = self.time_embedding(timestep_embedding(t, self.ch0, self.flip, self.shift))
        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            x, outs = block(x, emb)
            skips += outs
        x = self.mid_block(x, emb)
        for block in self.up_blocks:
            x = block(x, skips, emb)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


def check(model_dir, parity_path):
    """Our module code against diffusers' own output on the tiny fixture."""
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = UNet(cfg).eval()
    model.load_state_dict(load_file(os.path.join(model_dir, "diffusion_pytorch_model.safetensors")))
    ref = load_file(parity_path)
    from safetensors import safe_open

    with safe_open(parity_path, "pt") as f:
        t = int(f.metadata()["t"])
    xt = ref["input.xt"]
    with torch.no_grad():
        eps = model(xt, torch.full((xt.shape[0],), t))
    err = (eps - ref["output.eps"]).abs().max().item()
    print(json.dumps({"check": model_dir, "max_abs_error": err}))
    if err > 1e-4:
        raise SystemExit(f"reference UNet differs from diffusers by {err}")


def bench(name, cfg, batch, steps, warmup, threads, seed=0):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = UNet(cfg).train()
    params = [p for p in model.parameters()]
    n_params = sum(p.numel() for p in params)
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    dims = 2 if cfg.get("_class_name", "UNet2DModel") == "UNet2DModel" else 1
    size = cfg.get("sample_size", 32)
    c = cfg.get("in_channels", 3)
    shape = (64, c, size, size) if dims == 2 else (64, c, size)
    data = torch.rand(shape) * 2 - 1
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        idx = torch.randint(0, data.shape[0], (batch,))
        x0 = data[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        a = abar[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(model(xt, t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.9999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        loss.item()
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    print(json.dumps({
        "model": name, "params": n_params, "batch": batch, "threads": threads,
        "torch": torch.__version__, "ms": [round(x, 1) for x in times],
        "median_ms": round(statistics.median(times), 1),
    }), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["wave", "cifar-small", "both"], default="both")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--check", nargs=2, metavar=("MODEL_DIR", "PARITY"))
    args = p.parse_args()
    if args.check:
        check(*args.check)
        return
    cifar = CIFAR_SMALL
    if os.path.exists(CIFAR_SMALL_PATH):
        with open(CIFAR_SMALL_PATH) as f:
            cifar = json.load(f)
    if args.model in ("wave", "both"):
        bench("wave-1d", WAVE_1D, args.batch, args.steps, args.warmup, args.threads)
    if args.model in ("cifar-small", "both"):
        bench("ddpm-cifar10-small", cifar, args.batch, args.steps, args.warmup, args.threads)


if __name__ == "__main__":
    main()
