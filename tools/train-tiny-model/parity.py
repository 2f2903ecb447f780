#!/usr/bin/python3
"""Writes the parity fixture the C# tests compare the ONNX graphs against: torch's text-encoder
states and UNet output for fixed inputs, computed from a weights file (default: the shipped one).

    /usr/bin/python3 tools/train-tiny-model/parity.py
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import train  # noqa: E402
from clip_bpe import ClipBpe  # noqa: E402
from nets import UNet, ClipText, import_weights  # noqa: E402

FIXTURE = os.path.join(train.REPO, "tests", "AsyncDiffusion.Tests", "Models", "Data", "tiny_shapes_parity.json")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default=os.path.join(train.DATA, "tiny_shapes.safetensors"))
    p.add_argument("--out", default=FIXTURE)
    args = p.parse_args()
    torch.manual_seed(7)
    bpe = ClipBpe(train.MERGES)
    unet, text = UNet(train.UNET), ClipText(train.TEXT, train.grammar_vocabulary(bpe))
    import_weights(unet, text, safetensors_io.load(args.weights))
    caption = "a small yellow star at the top left on a purple background"
    ids = torch.tensor([bpe.input_ids(caption)])
    sample = torch.randn(1, 4, train.IMAGE // 8, train.IMAGE // 8)
    timestep = 501
    with torch.no_grad():
        states = text(ids)
        out = unet(sample, torch.tensor([timestep]), states)
    fixture = {
        "weights_sha256_prefix": __import__("hashlib").sha256(open(args.weights, "rb").read()).hexdigest()[:12],
        "caption": caption,
        "input_ids": ids[0].tolist(),
        "text_states_first_16_tokens": [round(v, 6) for v in states[0, :16].flatten().tolist()],
        "timestep": timestep,
        "sample": [round(v, 6) for v in sample.flatten().tolist()],
        "unet_output": [round(v, 6) for v in out.flatten().tolist()],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
