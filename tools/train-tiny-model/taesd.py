"""TAESD's encoder and decoder in torch, loading the weights the library ships (names as in madebyollin/taesd)."""
import torch
from torch import nn
import torch.nn.functional as F


def _conv(cin, cout, stride=1, bias=True):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(_conv(64, 64), nn.ReLU(), _conv(64, 64), nn.ReLU(), _conv(64, 64))

    def forward(self, x):
        return F.relu(self.conv(x) + x)


class TaesdEncoder(nn.Sequential):
    """Image in [0, 1] [B, 3, H, W] → latents [B, 4, H/8, W/8] (SD's scaled latent space)."""

    def __init__(self):
        layers = [_conv(3, 64), _Block()]
        for _ in range(3):
            layers += [_conv(64, 64, stride=2, bias=False), _Block(), _Block(), _Block()]
        layers.append(_conv(64, 4))
        super().__init__(*layers)


class _Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class TaesdDecoder(nn.Sequential):
    """Latents → image in about [0, 1]."""

    def __init__(self):
        layers = [_Clamp(), _conv(4, 64), nn.ReLU()]
        for _ in range(3):
            layers += [_Block(), _Block(), _Block(), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]
        layers += [_Block(), _conv(64, 3)]
        super().__init__(*layers)


def load(module, weights):
    missing, unexpected = module.load_state_dict(weights, strict=True)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
