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

`--model attention-head` times a training step of a twin of diffprobe's AttentionHead at the
CIFAR-10 example's setting (4x4 tokens of 128 channels, dim 128, 2 layers, 8 heads, batch 256,
cross-entropy, AdamW). `--serve` keeps the models and times steps requested as JSON lines on
stdin (`{"model": "wave", "batch": 32, "steps": 1}`), for bench/compare_train.ts.

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


class DiffusionStep:
    """One diffusion training step of a UNet, built once and timed step by step."""

    def __init__(self, cfg, batch, seed=0):
        torch.manual_seed(seed)
        self.model = UNet(cfg).train()
        self.params = [p for p in self.model.parameters()]
        self.n_params = sum(p.numel() for p in self.params)
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)
        dims = 2 if cfg.get("_class_name", "UNet2DModel") == "UNet2DModel" else 1
        size = cfg.get("sample_size", 32)
        c = cfg.get("in_channels", 3)
        shape = (64, c, size, size) if dims == 2 else (64, c, size)
        self.data = torch.rand(shape) * 2 - 1
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        self.abar = torch.cumprod(1 - betas, 0).float()
        self.batch = batch
        self.step_count = 0

    def __call__(self):
        start = time.perf_counter()
        idx = torch.randint(0, self.data.shape[0], (self.batch,))
        x0 = self.data[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (self.batch,))
        a = self.abar[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(self.model(xt, t), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        step = self.step_count
        self.step_count += 1
        decay = min(0.9999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1 - decay)
        loss.item()
        return (time.perf_counter() - start) * 1000


class AttentionHead(nn.Module):
    """Twin of diffprobe's AttentionHead: LN + linear token embedding, learned positions and class
    token, pre-LN transformer blocks (fused qkv, exact-GELU 4x MLP), final LN of the class token,
    linear output."""

    def __init__(self, tokens, channels, dim, heads, layers, outputs):
        super().__init__()
        self.heads = heads
        self.embed_norm = nn.LayerNorm(channels)
        self.embed = nn.Linear(channels, dim)
        self.pos = nn.Parameter(torch.zeros(tokens, dim))
        self.cls = nn.Parameter(torch.zeros(dim))
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim),
                "proj": nn.Linear(dim, dim), "norm2": nn.LayerNorm(dim),
                "fc1": nn.Linear(dim, 4 * dim), "fc2": nn.Linear(4 * dim, dim),
            }))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, outputs)

    def forward(self, x):
        b, n, _ = x.shape
        h = self.embed(self.embed_norm(x)) + self.pos
        h = torch.cat([self.cls.view(1, 1, -1).expand(b, 1, -1), h], 1)
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["norm1"](h)).view(b, n + 1, 3, self.heads, -1).permute(
                2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v)
            h = h + blk["proj"](a.transpose(1, 2).reshape(b, n + 1, -1))
            h = h + blk["fc2"](F.gelu(blk["fc1"](blk["norm2"](h))))
        return self.head(self.norm(h[:, 0]))


class HeadStep:
    """One AttentionHead training step (cross-entropy, AdamW) on random features."""

    def __init__(self, batch=256, tokens=16, channels=128, dim=128, heads=8, layers=2, seed=0):
        torch.manual_seed(seed)
        self.model = AttentionHead(tokens, channels, dim, heads, layers, 10).train()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, weight_decay=0.05)
        self.x = torch.randn(4 * batch, tokens, channels)
        self.y = torch.randint(0, 10, (4 * batch,))
        self.batch = batch
        self.i = 0

    def __call__(self):
        start = time.perf_counter()
        lo = (self.i % 4) * self.batch
        self.i += 1
        loss = F.cross_entropy(self.model(self.x[lo:lo + self.batch]), self.y[lo:lo + self.batch])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        loss.item()
        return (time.perf_counter() - start) * 1000


def make_step(name, batch):
    if name == "wave":
        return DiffusionStep(WAVE_1D, batch)
    if name == "cifar-small":
        cifar = CIFAR_SMALL
        if os.path.exists(CIFAR_SMALL_PATH):
            with open(CIFAR_SMALL_PATH) as f:
                cifar = json.load(f)
        return DiffusionStep(cifar, batch)
    if name == "attention-head":
        return HeadStep(batch)
    raise SystemExit(f"unknown model {name}")


def bench(name, step, steps, warmup, threads):
    times = [step() for _ in range(warmup + steps)][warmup:]
    print(json.dumps({
        "model": name, "params": step.n_params, "batch": step.batch, "threads": threads,
        "torch": torch.__version__, "ms": [round(x, 1) for x in times],
        "median_ms": round(statistics.median(times), 1),
    }), flush=True)


def serve(threads):
    """Times steps on request: reads {"model", "batch", "steps"} lines, answers {"ms": [...]}."""
    steps = {}
    print(json.dumps({"torch": torch.__version__, "threads": threads}), flush=True)
    for line in iter(input_line, None):
        cmd = json.loads(line)
        key = (cmd["model"], cmd["batch"])
        if key not in steps:
            steps[key] = make_step(cmd["model"], cmd["batch"])
        ms = [steps[key]() for _ in range(cmd.get("steps", 1))]
        print(json.dumps({"ms": ms, "params": steps[key].n_params}), flush=True)


def input_line():
    try:
        return input()
    except EOFError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["wave", "cifar-small", "attention-head", "both"],
                   default="both")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--check", nargs=2, metavar=("MODEL_DIR", "PARITY"))
    p.add_argument("--serve", action="store_true", help="time steps requested on stdin")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        serve(args.threads)
        return
    if args.check:
        check(*args.check)
        return
    names = {"wave": "wave-1d", "cifar-small": "ddpm-cifar10-small", "attention-head": "attention-head"}
    for model in (["wave", "cifar-small"] if args.model == "both" else [args.model]):
        batch = 256 if model == "attention-head" and args.batch == 32 else args.batch
        bench(names[model], make_step(model, batch), args.steps, args.warmup, args.threads)

if __name__ == "__main__":
    main()
