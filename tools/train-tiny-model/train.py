#!/usr/bin/python3
"""Trains AsyncDiffusion's built-in text-to-image model on the procedural shapes world.

    nice -n 15 /usr/bin/python3 tools/train-tiny-model/train.py            # reproduces the shipped weights

Steps: render the dataset (seeded), encode it once with TAESD (cached), train the UNet and the
text encoder jointly with SD's noise schedule, and export the EMA weights as a safetensors state
dict (diffusers/transformers names, PyTorch layout) that the library's graph builder binds by
name. See README.md in this folder.
"""
import argparse
import json
import math
import os
import random
import sys
import time

# Debian's torch links the system BLAS; OpenBLAS misdetects some new CPUs and falls back to a slow kernel.
if "OPENBLAS_CORETYPE" not in os.environ and "avx512f" in open("/proc/cpuinfo").read():
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
# On a shared machine OpenMP's spin-waiting at every op's barrier burns more CPU than the op (measured: 13x per step).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import scenes  # noqa: E402
import taesd  # noqa: E402
from clip_bpe import ClipBpe, BOS, EOS  # noqa: E402
from nets import UNet, ClipText, export_unet, export_text  # noqa: E402
from plots import loss_curve  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(REPO, "src", "AsyncDiffusion", "Models", "Data")
MERGES = os.path.join(REPO, "src", "AsyncDiffusion", "Tokenization", "Data", "bpe_simple_vocab_16e6.txt.gz")

# Must match SyntheticPreset.TinyShapes in the library.
UNET = dict(block_out_channels=[32, 64], cross_attention=[True, True], layers_per_block=1, cross_attention_dim=32,
            attention_heads=[2, 4], norm_num_groups=8, in_channels=4, out_channels=4)
TEXT = dict(vocab_size=49408, hidden=32, layers=2, heads=4, intermediate=128, max_positions=77)
IMAGE = 64


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def grammar_vocabulary(bpe):
    words = {"a", "an", "on", "at", "in", "the", "and", "background", "center"}
    words |= set(scenes.COLOUR_NAMES) | set(scenes.SHAPES) | {"small", "large"}
    words |= {w for p in scenes.POSITIONS for w in p.split()}
    ids = {BOS, EOS}
    for w in words:
        ids |= set(bpe.encode(w))
    return sorted(ids)


def build_dataset(args, cache):
    """Scenes (JSON) and TAESD latents [N, 4, 8, 8] (fp16), cached by seed and size."""
    path = os.path.join(cache, f"shapes-{args.seed}-{args.images}-{IMAGE}.npz")
    if os.path.exists(path):
        log(f"dataset: cached {path}")
        d = np.load(path, allow_pickle=False)
        return json.loads(str(d["scenes"])), torch.from_numpy(d["latents"].astype(np.float32))
    rng = random.Random(args.seed)
    encoder = taesd.load(taesd.TaesdEncoder(), safetensors_io.load(os.path.join(DATA, "taesd_encoder.safetensors")))
    all_scenes, latents = [], []
    clock = time.time()
    for start in range(0, args.images, 256):
        batch = [scenes.sample_scene(rng) for _ in range(min(256, args.images - start))]
        pixels = np.stack([np.asarray(scenes.render(s, IMAGE, rng)) for s in batch])
        with torch.no_grad():
            z = encoder(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
        all_scenes += batch
        latents.append(z.half().numpy())
        done = start + len(batch)
        log(f"dataset: {done}/{args.images} images encoded ({(time.time() - clock) / done * 1000:.0f} ms each)")
    latents = np.concatenate(latents)
    os.makedirs(cache, exist_ok=True)
    np.savez(path, scenes=json.dumps(all_scenes), latents=latents)
    return all_scenes, torch.from_numpy(latents.astype(np.float32))


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2  # scaled_linear
    return torch.cumprod(1 - betas, 0).float()


class Captioner:
    """Caption variants per draw (centre said or not, background said or not) and 10 % empty captions for CFG."""

    def __init__(self, bpe, dropout):
        self.bpe, self.dropout, self.cache = bpe, dropout, {}

    def ids(self, scene, rng):
        text = "" if rng.random() < self.dropout else scenes.caption(scene, rng.random() < 0.5, rng.random() < 0.9)
        if text not in self.cache:
            self.cache[text] = self.bpe.input_ids(text)
        return self.cache[text]


def export(unet, text, path, meta):
    tensors = {**export_unet(unet), **export_text(text)}
    safetensors_io.save(path, tensors, metadata=meta, half=True)
    return sum(t.numel() for t in tensors.values())


@torch.no_grad()
def sample(unet, text, bpe, captions, seed, steps=20, cfg=2.5):
    """DDIM (eta 0, leading spacing + offset 1, as the model's scheduler config) for previews."""
    ac = alphas_cumprod()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(captions), 4, IMAGE // 8, IMAGE // 8, generator=g)
    cond = text(torch.tensor([bpe.input_ids(c) for c in captions]))
    uncond = text(torch.tensor([bpe.input_ids("")] * len(captions)))
    ts = [i * (1000 // steps) + 1 for i in range(steps)][::-1]
    for i, t in enumerate(ts):
        tt = torch.full((len(captions),), t)
        eps = unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([uncond, cond]))
        eu, ec = eps.chunk(2)
        eps = eu + cfg * (ec - eu)
        a = ac[t]
        a_prev = ac[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(ac[0].item())
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def preview(unet, text, bpe, decoder, path, seed):
    from PIL import Image
    prompts = [scenes.caption({"background": b, "objects": [{"shape": s, "colour": c, "size": "medium", "position": "center"}]})
               for c, s, b in (scenes.held_out_triples()[k * 9 % 40] for k in range(8))]
    with torch.no_grad():
        images = decoder(sample(unet, text, bpe, prompts, seed)).clamp(0, 1)
    grid = torch.cat([torch.cat(list(images[r * 4:(r + 1) * 4]), 2) for r in range(2)], 1)
    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize((512, 256), Image.NEAREST).save(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--images", type=int, default=12000, help="training images rendered and encoded once")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps (constant LR after warm-up: a run stopped early equals a shorter run)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--minutes", type=float, default=0, help="stop after this wall time (0: no limit); the last checkpoint is kept")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="checkpoints, loss log and curve, previews")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pt (same result as an uninterrupted run)")
    p.add_argument("--ship", action="store_true", help="also copy the final weights into the library's data folder")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    clock = time.time()
    bpe = ClipBpe(MERGES)
    data_scenes, latents = build_dataset(args, args.cache)
    log(f"dataset: {len(data_scenes)} scenes, latents mean {latents.mean():.3f} std {latents.std():.3f}")

    unet, text = UNet(UNET), ClipText(TEXT, grammar_vocabulary(bpe))
    ema_unet, ema_text = UNet(UNET), ClipText(TEXT, text.vocab)
    ema_unet.load_state_dict(unet.state_dict())
    ema_text.load_state_dict(text.state_dict())
    params = list(unet.parameters()) + list(text.parameters())
    log(f"model: UNet {sum(p.numel() for p in unet.parameters()):,} parameters, text encoder {sum(p.numel() for p in text.parameters()):,} trained "
        f"({len(text.vocab)} token rows)")
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ac = alphas_cumprod()
    snr = ac / (1 - ac)
    weight = torch.clamp(snr, max=5.0) / snr  # min-SNR-5 weighting for epsilon prediction
    captioner = Captioner(bpe, args.caption_dropout)
    rng = random.Random(args.seed + 1)
    decoder = taesd.load(taesd.TaesdDecoder(), safetensors_io.load(os.path.join(DATA, "taesd_decoder.safetensors")))
    history = []
    order = []
    first = 1
    weights_path = os.path.join(args.out, "tiny_shapes.safetensors")
    state_path = os.path.join(args.out, "state.pt")
    if args.resume:
        state = torch.load(state_path)
        for module, key in ((unet, "unet"), (text, "text"), (ema_unet, "ema_unet"), (ema_text, "ema_text"), (opt, "opt")):
            module.load_state_dict(state[key])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        order, history, first = state["order"], state["history"], state["step"] + 1
        clock = time.time() - state["elapsed"]
        log(f"resumed at step {first} after {state['elapsed'] / 60:.1f} min")
    for step in range(first, args.steps + 1):
        if len(order) < args.batch:
            order += rng.sample(range(len(data_scenes)), len(data_scenes))
        idx, order = order[:args.batch], order[args.batch:]
        x0 = latents[idx]
        ids = torch.tensor([captioner.ids(data_scenes[i], rng) for i in idx])
        t = torch.randint(0, 1000, (len(idx),))
        noise = torch.randn_like(x0)
        a = ac[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, step / 100)
        pred = unet(xt, t, text(ids))
        loss = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss_w = (loss * weight[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss_w.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, m in ((ema_unet, unet), (ema_text, text)):
                for pe, pm in zip(e.parameters(), m.parameters()):
                    pe.mul_(decay).add_(pm, alpha=1 - decay)
        history.append((step, loss.mean().item()))
        elapsed = time.time() - clock
        if step % 25 == 0:
            recent = sum(l for _, l in history[-25:]) / 25
            log(f"step {step}/{args.steps}  loss {recent:.4f}  {elapsed / 60:.1f} min")
        out_of_time = args.minutes > 0 and elapsed > args.minutes * 60
        if step % args.checkpoint_every == 0 or step == args.steps or out_of_time:
            meta = {"format": "asyncdiffusion tiny-shapes: diffusers/transformers state dict (names and PyTorch layout)",
                    "steps": step, "seed": args.seed, "images": args.images, "batch": args.batch, "lr": args.lr,
                    "ema": args.ema, "image_size": IMAGE, "unet": json.dumps(UNET), "text": json.dumps(TEXT),
                    "minutes": f"{elapsed / 60:.1f}"}
            count = export(ema_unet, ema_text, weights_path, meta)
            torch.save({"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(),
                        "opt": opt.state_dict(), "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "order": order,
                        "history": history, "step": step, "elapsed": elapsed}, state_path)
            with open(os.path.join(args.out, "loss.json"), "w") as f:
                json.dump(history, f)
            loss_curve(history, os.path.join(args.out, "loss.png"))
            rng_state = torch.get_rng_state()
            preview(ema_unet, ema_text, bpe, decoder, os.path.join(args.out, f"preview-{step:05d}.png"), seed=0)
            torch.set_rng_state(rng_state)
            log(f"checkpoint: step {step}, {count:,} exported values, {os.path.getsize(weights_path) / 1e6:.1f} MB")
        if out_of_time:
            log(f"stopping: {args.minutes} min wall-time limit reached at step {step}")
            break
    if args.ship:
        import shutil
        shutil.copy(weights_path, os.path.join(DATA, "tiny_shapes.safetensors"))
        log(f"shipped {os.path.join(DATA, 'tiny_shapes.safetensors')}")
    log(f"done in {(time.time() - clock) / 60:.1f} min")


if __name__ == "__main__":
    main()
