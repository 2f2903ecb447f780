"""The denoiser and text encoder, mirroring exactly what the library's ONNX graph builder emits
(src/AsyncDiffusion/Models/Synthetic/UNetGraph.cs and ClipTextGraph.cs) for a given config:
same blocks, order, norms, epsilons, activations and parameter names, so exported weights bind
by name. The export is a plain state dict: diffusers/transformers names, PyTorch layout (Linear
weights [out, in]); the library's graph builder transposes what it stores as [in, out]."""
import math

import torch
from torch import nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dq, dkv, heads, names=("to_q", "to_k", "to_v", "to_out"), qkv_bias=False):
        super().__init__()
        self.heads = heads
        q, k, v, o = names
        self.names = names
        setattr(self, q, nn.Linear(dq, dq, bias=qkv_bias))
        setattr(self, k, nn.Linear(dkv, dq, bias=qkv_bias))
        setattr(self, v, nn.Linear(dkv, dq, bias=qkv_bias))
        # diffusers names the output projection to_out.0 (a ModuleList with dropout after it).
        setattr(self, o, nn.ModuleList([nn.Linear(dq, dq)]) if o == "to_out" else nn.Linear(dq, dq))

    def forward(self, x, context, mask=None):
        q, k, v, o = (getattr(self, n) for n in self.names)
        b, n, d = x.shape
        h = self.heads
        query = q(x).view(b, n, h, d // h).transpose(1, 2)
        key = k(context).view(b, context.shape[1], h, d // h).transpose(1, 2)
        value = v(context).view(b, context.shape[1], h, d // h).transpose(1, 2)
        scores = query @ key.transpose(-1, -2) / math.sqrt(d // h)
        if mask is not None:
            scores = scores + mask
        out = (scores.softmax(-1) @ value).transpose(1, 2).reshape(b, n, d)
        return o[0](out) if isinstance(o, nn.ModuleList) else o(out)


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class FeedForward(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.net = nn.ModuleList([GegluProj(ch), nn.Identity(), nn.Linear(4 * ch, ch)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class GegluProj(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.proj = nn.Linear(ch, 8 * ch)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class TransformerBlock(nn.Module):
    def __init__(self, ch, cross, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(ch)
        self.attn1 = Attention(ch, ch, heads)
        self.norm2 = nn.LayerNorm(ch)
        self.attn2 = Attention(ch, cross, heads)
        self.norm3 = nn.LayerNorm(ch)
        self.ff = FeedForward(ch)

    def forward(self, x, context):
        n = self.norm1(x)
        x = x + self.attn1(n, n)
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2D(nn.Module):
    """GroupNorm, 1×1 conv in, one transformer block, 1×1 conv out, residual (use_linear_projection=False)."""

    def __init__(self, ch, cross, heads, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(ch, cross, heads)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, context):
        b, c, hh, ww = x.shape
        t = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        t = self.transformer_blocks[0](t, context)
        return self.proj_out(t.transpose(1, 2).reshape(b, c, hh, ww)) + x


class Block(nn.Module):
    """A down or up block: resnets, attentions, optional sampler (names as diffusers)."""

    def __init__(self, resnets, attentions, sampler_name, sampler):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        if sampler is not None:
            setattr(self, sampler_name, nn.ModuleList([_ConvHolder(sampler)]))


class _ConvHolder(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv


class UNet(nn.Module):
    """UNet2DConditionModel as UNetGraph.cs builds it (mid block with cross-attention, one transformer block per attention)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch = cfg["block_out_channels"]
        cross, layers, groups, heads = cfg["cross_attention_dim"], cfg["layers_per_block"], cfg["norm_num_groups"], cfg["attention_heads"]
        attn = cfg["cross_attention"]
        ch0, temb = ch[0], ch[0] * 4
        self.ch0 = ch0
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(ch0, temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch0, 3, padding=1)

        skip_ch = [ch0]
        c = ch0
        down = []
        for b, out in enumerate(ch):
            res, att = [], []
            for _ in range(layers):
                res.append(Resnet(c, out, temb, groups))
                c = out
                if attn[b]:
                    att.append(Transformer2D(c, cross, heads[b], groups))
                skip_ch.append(c)
            sampler = None
            if b < len(ch) - 1:
                sampler = nn.Conv2d(c, c, 3, stride=2, padding=1)
                skip_ch.append(c)
            down.append(Block(res, att, "downsamplers", sampler))
        self.down_blocks = nn.ModuleList(down)

        self.mid_block = nn.Module()
        self.mid_block.resnets = nn.ModuleList([Resnet(c, c, temb, groups), Resnet(c, c, temb, groups)])
        self.mid_block.attentions = nn.ModuleList([Transformer2D(c, cross, heads[-1], groups)])

        up = []
        for u in range(len(ch)):
            b = len(ch) - 1 - u
            out = ch[b]
            res, att = [], []
            for _ in range(layers + 1):
                s = skip_ch.pop()
                res.append(Resnet(c + s, out, temb, groups))
                c = out
                if attn[b]:
                    att.append(Transformer2D(c, cross, heads[b], groups))
            sampler = nn.Conv2d(c, c, 3, padding=1) if u < len(ch) - 1 else None
            up.append(Block(res, att, "upsamplers", sampler))
        self.up_blocks = nn.ModuleList(up)
        self.conv_norm_out = nn.GroupNorm(groups, c, eps=1e-5)
        self.conv_out = nn.Conv2d(c, cfg["out_channels"], 3, padding=1)

    def time_features(self, t):
        half = self.ch0 // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)

    def forward(self, x, t, context):
        emb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(self.time_features(t))))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for i, r in enumerate(blk.resnets):
                h = r(h, emb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[i](h, context)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0].conv(h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, emb)
        h = self.mid_block.attentions[0](h, context)
        h = self.mid_block.resnets[1](h, emb)
        for blk in self.up_blocks:
            for i, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), emb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[i](h, context)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0].conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class ClipText(nn.Module):
    """CLIPTextModel as ClipTextGraph.cs builds it (quick GELU, causal mask, final LayerNorm).

    Training keeps token embeddings only for the ids the captions use (`vocab`, CLIP ids);
    export writes CLIP's full 49,408-row table with zero rows for every other id."""

    def __init__(self, cfg, vocab):
        super().__init__()
        self.cfg = cfg
        d = cfg["hidden"]
        self.vocab = list(vocab)
        lookup = torch.zeros(cfg["vocab_size"], dtype=torch.long)  # 0 → the frozen zero row
        for i, tok in enumerate(self.vocab):
            lookup[tok] = i + 1
        self.register_buffer("lookup", lookup, persistent=False)
        self.token_rows = nn.Parameter(torch.randn(len(self.vocab), d) * 0.02)
        self.position = nn.Parameter(torch.randn(cfg["max_positions"], d) * 0.01)
        self.layers = nn.ModuleList()
        for _ in range(cfg["layers"]):
            layer = nn.Module()
            layer.layer_norm1 = nn.LayerNorm(d)
            layer.self_attn = Attention(d, d, cfg["heads"], ("q_proj", "k_proj", "v_proj", "out_proj"), qkv_bias=True)
            layer.layer_norm2 = nn.LayerNorm(d)
            layer.fc1 = nn.Linear(d, cfg["intermediate"])
            layer.fc2 = nn.Linear(cfg["intermediate"], d)
            self.layers.append(layer)
        self.final_layer_norm = nn.LayerNorm(d)
        n = cfg["max_positions"]
        self.register_buffer("mask", torch.triu(torch.full((n, n), -1e9), 1), persistent=False)

    def forward(self, ids):
        table = torch.cat([torch.zeros(1, self.token_rows.shape[1]), self.token_rows])
        h = table[self.lookup[ids]] + self.position[: ids.shape[1]]
        mask = self.mask[: ids.shape[1], : ids.shape[1]]
        for layer in self.layers:
            n = layer.layer_norm1(h)
            h = h + layer.self_attn(n, n, mask)
            m = layer.fc1(layer.layer_norm2(h))
            h = h + layer.fc2(m * torch.sigmoid(1.702 * m))
        return self.final_layer_norm(h)


def export_unet(unet):
    """The UNet's state dict as it is: its names already are diffusers' (the ModuleList index in
    ff.net.0.proj / to_out.0 matches; the holders add ".conv")."""
    return dict(unet.state_dict())


def export_text(text):
    cfg = text.cfg
    out = {}
    table = torch.zeros(cfg["vocab_size"], cfg["hidden"])
    for i, tok in enumerate(text.vocab):
        table[tok] = text.token_rows.data[i]
    out["text_model.embeddings.token_embedding.weight"] = table
    out["text_model.embeddings.position_embedding.weight"] = text.position.data
    for l, layer in enumerate(text.layers):
        pre = f"text_model.encoder.layers.{l}"
        for name, m in [("layer_norm1", layer.layer_norm1), ("layer_norm2", layer.layer_norm2)]:
            out[f"{pre}.{name}.weight"], out[f"{pre}.{name}.bias"] = m.weight.data, m.bias.data
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            m = getattr(layer.self_attn, name)
            out[f"{pre}.self_attn.{name}.weight"], out[f"{pre}.self_attn.{name}.bias"] = m.weight.data, m.bias.data
        for name, m in [("mlp.fc1", layer.fc1), ("mlp.fc2", layer.fc2)]:
            out[f"{pre}.{name}.weight"], out[f"{pre}.{name}.bias"] = m.weight.data, m.bias.data
    out["text_model.final_layer_norm.weight"] = text.final_layer_norm.weight.data
    out["text_model.final_layer_norm.bias"] = text.final_layer_norm.bias.data
    return out


def import_weights(unet, text, tensors):
    """The inverse of export_unet/export_text: loads an exported file back into the torch modules."""
    unet.load_state_dict({name: tensors[name] for name in unet.state_dict()})
    table = tensors["text_model.embeddings.token_embedding.weight"]
    text.token_rows.data.copy_(table[text.vocab])
    text.position.data.copy_(tensors["text_model.embeddings.position_embedding.weight"])
    for l, layer in enumerate(text.layers):
        pre = f"text_model.encoder.layers.{l}"
        for name, m in [("layer_norm1", layer.layer_norm1), ("layer_norm2", layer.layer_norm2)]:
            m.weight.data.copy_(tensors[f"{pre}.{name}.weight"])
            m.bias.data.copy_(tensors[f"{pre}.{name}.bias"])
        for name, m in [(f"self_attn.{n}", getattr(layer.self_attn, n)) for n in ("q_proj", "k_proj", "v_proj", "out_proj")] + [("mlp.fc1", layer.fc1), ("mlp.fc2", layer.fc2)]:
            m.weight.data.copy_(tensors[f"{pre}.{name}.weight"])
            m.bias.data.copy_(tensors[f"{pre}.{name}.bias"])
    text.final_layer_norm.weight.data.copy_(tensors["text_model.final_layer_norm.weight"])
    text.final_layer_norm.bias.data.copy_(tensors["text_model.final_layer_norm.bias"])
