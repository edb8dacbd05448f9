"""PyTorch reference: times feature extraction the way users do it with diffusers.

A full `UNet2DModel` forward pass under `torch.inference_mode()` with a forward hook on the
tapped block's module, 2 intra-op threads, batch 64, warm-up then timed repetitions; prints one
JSON line per measurement.

The model is diffusers' `UNet2DModel` when diffusers is importable. Otherwise it is
`UNet2DModel` below: the same modules under the same names as diffusers' (so the same
safetensors load with `load_state_dict(strict=True)`) and the same forward code paths
(`ResnetBlock2D`, `Attention` with `AttnProcessor2_0`, i.e. `F.scaled_dot_product_attention`,
`Downsample2D` with diffusers' asymmetric padding, `Upsample2D` with `F.interpolate`).
`--check` verifies it against the diffusers-made parity tensors in ../shared/fixtures.

Usage:
  python bench/reference/extract_torch.py [--model DIR] [--block full --block 17] \
      [--batch 64] [--reps 5] [--threads 2] [--check PARITY.safetensors] [--serve]

Without --model the model is the 35.7M google/ddpm-cifar10-32 configuration with random
weights (timing only). --serve reads JSON commands {"block": "17", "reps": 1} from stdin and
answers each with one JSON line of seconds per forward pass (used by bench/compare_extract.ts
to interleave PyTorch and diffprobe measurements).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

GOOGLE_CIFAR10_32 = {
    "_class_name": "UNet2DModel",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
}


# ---------------------------------------------------------------------------------------------
# diffusers' UNet2DModel (positional time embedding, conv resampling, "default" time scale shift)
# with diffusers' module names and forward code.
# ---------------------------------------------------------------------------------------------


def get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False,
                           downscale_freq_shift=1.0, scale=1.0, max_period=10000):
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(
        start=0, end=half_dim, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class Timesteps(nn.Module):
    def __init__(self, num_channels, flip_sin_to_cos, downscale_freq_shift):
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift

    def forward(self, timesteps):
        return get_timestep_embedding(timesteps, self.num_channels, self.flip_sin_to_cos,
                                      self.downscale_freq_shift)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample):
        return self.linear_2(self.act(self.linear_1(sample)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, dropout=0.0,
                 output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=1, padding=0)
                              if in_channels != out_channels else None)

    def forward(self, input_tensor, temb):
        hidden_states = self.norm1(input_tensor)
        hidden_states = self.nonlinearity(hidden_states)
        hidden_states = self.conv1(hidden_states)
        temb = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        hidden_states = hidden_states + temb
        hidden_states = self.norm2(hidden_states)
        hidden_states = self.nonlinearity(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.conv2(hidden_states)
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor.contiguous())
        return (input_tensor + hidden_states) / self.output_scale_factor


class Attention(nn.Module):
    """diffusers' Attention as the UNet2D blocks build it, run by AttnProcessor2_0."""

    def __init__(self, query_dim, heads, dim_head, norm_num_groups, eps,
                 rescale_output_factor=1.0):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(norm_num_groups, query_dim, eps=eps, affine=True)
        self.to_q = nn.Linear(query_dim, inner_dim, bias=True)
        self.to_k = nn.Linear(query_dim, inner_dim, bias=True)
        self.to_v = nn.Linear(query_dim, inner_dim, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim, bias=True), nn.Dropout(0.0)])

    def forward(self, hidden_states, temb=None):
        residual = hidden_states
        batch_size, channel, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = self.to_q(hidden_states)
        key = self.to_k(hidden_states)
        value = self.to_v(hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // self.heads
        query = query.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, self.heads, head_dim).transpose(1, 2)
        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=None,
                                                       dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1,
                                                              self.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = self.to_out[0](hidden_states)
        hidden_states = self.to_out[1](hidden_states)
        hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        hidden_states = hidden_states + residual
        return hidden_states / self.rescale_output_factor


class Downsample2D(nn.Module):
    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, hidden_states):
        if self.padding == 0:
            hidden_states = F.pad(hidden_states, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(hidden_states)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, hidden_states):
        if hidden_states.shape[0] >= 64:
            hidden_states = hidden_states.contiguous()
        hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
        return self.conv(hidden_states)


class DownBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, num_layers, groups, eps,
                 add_downsample, downsample_padding, attention, head_dim):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels,
                          groups, eps) for i in range(num_layers)])
        if attention:
            self.attentions = nn.ModuleList([
                Attention(out_channels, out_channels // head_dim, head_dim, groups, eps)
                for _ in range(num_layers)])
        else:
            self.attentions = None
        self.downsamplers = (nn.ModuleList([Downsample2D(out_channels, downsample_padding)])
                             if add_downsample else None)

    def forward(self, hidden_states, temb):
        output_states = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states)
            output_states = output_states + (hidden_states,)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            output_states = output_states + (hidden_states,)
        return hidden_states, output_states


class UpBlock2D(nn.Module):
    def __init__(self, in_channels, prev_output_channel, out_channels, temb_channels, num_layers,
                 groups, eps, add_upsample, attention, head_dim):
        super().__init__()
        resnets = []
        for i in range(num_layers):
            res_skip_channels = in_channels if (i == num_layers - 1) else out_channels
            resnet_in_channels = prev_output_channel if i == 0 else out_channels
            resnets.append(ResnetBlock2D(resnet_in_channels + res_skip_channels, out_channels,
                                         temb_channels, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        if attention:
            self.attentions = nn.ModuleList([
                Attention(out_channels, out_channels // head_dim, head_dim, groups, eps)
                for _ in range(num_layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, hidden_states, res_hidden_states_tuple, temb):
        for i, resnet in enumerate(self.resnets):
            res_hidden_states = res_hidden_states_tuple[-1]
            res_hidden_states_tuple = res_hidden_states_tuple[:-1]
            hidden_states = torch.cat([hidden_states, res_hidden_states], dim=1)
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states)
        return hidden_states


class UNetMidBlock2D(nn.Module):
    def __init__(self, in_channels, temb_channels, groups, attn_groups, eps, output_scale_factor,
                 head_dim, add_attention=True):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels, in_channels, temb_channels, groups, eps,
                          output_scale_factor=output_scale_factor) for _ in range(2)])
        self.attentions = nn.ModuleList([
            Attention(in_channels, in_channels // head_dim, head_dim, attn_groups, eps,
                      rescale_output_factor=output_scale_factor)] if add_attention else [None])

    def forward(self, hidden_states, temb):
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            if attn is not None:
                hidden_states = attn(hidden_states, temb=temb)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = {**config}
        ch = c["block_out_channels"]
        groups = c.get("norm_num_groups", 32)
        eps = c.get("norm_eps", 1e-5)
        head_dim = c.get("attention_head_dim")
        layers = c.get("layers_per_block", 2)
        time_embed_dim = ch[0] * 4
        self.center_input_sample = c.get("center_input_sample", False)
        self.conv_in = nn.Conv2d(c.get("in_channels", 3), ch[0], 3, padding=1)
        self.time_proj = Timesteps(ch[0], c.get("flip_sin_to_cos", True), c.get("freq_shift", 0))
        self.time_embedding = TimestepEmbedding(ch[0], time_embed_dim)
        self.down_blocks = nn.ModuleList()
        output_channel = ch[0]
        for i, kind in enumerate(c["down_block_types"]):
            input_channel, output_channel = output_channel, ch[i]
            self.down_blocks.append(DownBlock2D(
                input_channel, output_channel, time_embed_dim, layers, groups, eps,
                i != len(ch) - 1, c.get("downsample_padding", 1), kind == "AttnDownBlock2D",
                head_dim or output_channel))
        attn_groups = c.get("attn_norm_num_groups") or groups
        self.mid_block = UNetMidBlock2D(ch[-1], time_embed_dim, groups, attn_groups, eps,
                                        c.get("mid_block_scale_factor", 1), head_dim or ch[-1],
                                        c.get("add_attention", True))
        self.up_blocks = nn.ModuleList()
        reversed_ch = list(reversed(ch))
        output_channel = reversed_ch[0]
        for i, kind in enumerate(c["up_block_types"]):
            prev_output_channel = output_channel
            output_channel = reversed_ch[i]
            input_channel = reversed_ch[min(i + 1, len(ch) - 1)]
            self.up_blocks.append(UpBlock2D(
                input_channel, prev_output_channel, output_channel, time_embed_dim, layers + 1,
                groups, eps, i != len(ch) - 1, kind == "AttnUpBlock2D",
                head_dim or output_channel))
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], c.get("out_channels", 3), 3, padding=1)

    def forward(self, sample, timestep):
        if self.center_input_sample:
            sample = 2 * sample - 1.0
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.long, device=sample.device)
        timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype,
                                           device=timesteps.device)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))
        sample = self.conv_in(sample)
        down_block_res_samples = (sample,)
        for block in self.down_blocks:
            sample, res_samples = block(sample, emb)
            down_block_res_samples += res_samples
        sample = self.mid_block(sample, emb)
        for block in self.up_blocks:
            res_samples = down_block_res_samples[-len(block.resnets):]
            down_block_res_samples = down_block_res_samples[:-len(block.resnets)]
            sample = block(sample, res_samples, emb)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        return sample


# ---------------------------------------------------------------------------------------------
# Blocks by number (API.md's numbering) and their modules.
# ---------------------------------------------------------------------------------------------


def block_modules(config):
    """[(number or None, name, module path)] in execution order."""
    levels = len(config["block_out_channels"])
    layers = config.get("layers_per_block", 2)
    out = [("conv_in", "conv_in", True)]
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(layers):
            sub = f"attentions.{j}" if kind == "AttnDownBlock2D" else f"resnets.{j}"
            out.append((f"down_blocks.{i}.{j}", f"down_blocks.{i}.{sub}", True))
        if i < levels - 1:
            out.append((f"down_blocks.{i}.downsample", f"down_blocks.{i}.downsamplers.0", True))
    out.append(("mid_block", "mid_block", True))
    for i, kind in enumerate(config["up_block_types"]):
        upsamples = i < levels - 1
        for j in range(layers + 1):
            sub = f"attentions.{j}" if kind == "AttnUpBlock2D" else f"resnets.{j}"
            out.append((f"up_blocks.{i}.{j}", f"up_blocks.{i}.{sub}",
                        not (upsamples and j == layers)))
        if upsamples:
            out.append((f"up_blocks.{i}.upsample", f"up_blocks.{i}.upsamplers.0", True))
    numbered, n = [], 0
    for name, path, counted in out:
        n += counted
        numbered.append((n if counted else None, name, path))
    return numbered


def find_block(config, ref):
    for number, name, path in block_modules(config):
        if str(number) == str(ref) or name == ref:
            return number, name, path
    raise SystemExit(f"No block {ref!r}")


# ---------------------------------------------------------------------------------------------


def load_model(args):
    from safetensors.torch import load_file

    config = GOOGLE_CIFAR10_32
    if args.model:
        with open(os.path.join(args.model, "config.json")) as f:
            config = json.load(f)
    source = "plain torch (diffusers module names)"
    try:
        from diffusers import UNet2DModel as DiffusersUNet  # noqa: N813

        model = (DiffusersUNet.from_pretrained(args.model) if args.model
                 else DiffusersUNet.from_config(config))
        source = "diffusers"
    except ImportError:
        model = UNet2DModel(config)
        if args.model:
            state = {}
            for name in sorted(os.listdir(args.model)):
                if name.endswith(".safetensors"):
                    state.update(load_file(os.path.join(args.model, name)))
            model.load_state_dict(state, strict=True)
        else:
            torch.manual_seed(0)  # random weights: timing only
    return model.eval(), config, source


def check(model, config, path):
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    captured = {}
    hooks = [model.get_submodule(p).register_forward_hook(
        lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for _, name, p in block_modules(config)]
    with torch.inference_mode():
        eps = model(tensors["input.xt"], int(meta["t"]))
    for h in hooks:
        h.remove()
    worst = (eps - tensors["output.eps"]).abs().max().item()
    for name in json.loads(meta["order"]):
        worst = max(worst, (captured[name] - tensors[f"block.{name}"]).abs().max().item())
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="diffusers model folder (default: random 35.7M google config)")
    p.add_argument("--block", action="append", default=None,
                   help="tapped block number or name (repeatable; 'full' = no hook)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--t", type=int, default=30)
    p.add_argument("--check", help="parity .safetensors to verify the model against first")
    p.add_argument("--serve", action="store_true", help="time commands read from stdin")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model, config, source = load_model(args)
    if args.check:
        err = check(model, config, args.check)
        print(json.dumps({"check": args.check, "max_abs_error": err}), flush=True)
        if err > 1e-4:
            sys.exit(f"Reference model differs from diffusers by {err}")

    size = config.get("sample_size", 32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, config.get("in_channels", 3), size, size, generator=g) * 2 - 1
    t = torch.full((args.batch,), args.t, dtype=torch.long)

    def timed(ref, reps, warmup):
        """Seconds per full forward pass with a hook on block `ref` ("full": no hook)."""
        feats = {}
        hook = None
        if ref != "full":
            _, _, path = find_block(config, ref)
            hook = model.get_submodule(path).register_forward_hook(
                lambda _m, _i, out: feats.__setitem__("x", out))
        try:
            with torch.inference_mode():
                for _ in range(warmup):
                    model(x, t)
                times = []
                for _ in range(reps):
                    start = time.perf_counter()
                    model(x, t)
                    times.append(time.perf_counter() - start)
        finally:
            if hook:
                hook.remove()
        return times

    if args.serve:
        print(json.dumps({"ready": True, "model": source, "torch": torch.__version__,
                          "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            times = timed(str(cmd.get("block", "full")), int(cmd.get("reps", 1)),
                          int(cmd.get("warmup", 0)))
            print(json.dumps({"seconds": times}), flush=True)
        return

    for ref in args.block or ["full", "17"]:
        times = timed(ref, args.reps, args.warmup)
        best, median = min(times), sorted(times)[len(times) // 2]
        print(json.dumps({
            "engine": "pytorch", "model": source, "block": ref, "batch": args.batch,
            "threads": args.threads, "torch": torch.__version__,
            "images_per_s_median": round(args.batch / median, 2),
            "images_per_s_best": round(args.batch / best, 2),
            "machine": platform.processor() or platform.machine(),
        }), flush=True)


if __name__ == "__main__":
    main()
