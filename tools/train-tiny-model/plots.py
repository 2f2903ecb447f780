"""A loss-curve PNG drawn with PIL (Debian's python3-matplotlib is not needed)."""
import math

from PIL import Image, ImageDraw


def loss_curve(history, path, width=800, height=450, window=50):
    steps = [s for s, _ in history]
    losses = [l for _, l in history]
    smooth = []
    acc = 0.0
    for i, l in enumerate(losses):
        acc += l
        if i >= window:
            acc -= losses[i - window]
        smooth.append(acc / min(i + 1, window))
    image = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(image)
    left, right, top, bottom = 70, width - 20, 30, height - 50
    lo = math.log10(max(min(losses), 1e-4))
    hi = math.log10(max(losses))
    lo, hi = math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2
    if hi <= lo:
        hi = lo + 0.5

    def xy(s, l):
        x = left + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (right - left)
        y = bottom - (math.log10(max(l, 1e-4)) - lo) / (hi - lo) * (bottom - top)
        return x, y

    d.rectangle([left, top, right, bottom], outline="black")
    v = lo
    while v <= hi + 1e-9:
        y = xy(steps[0], 10 ** v)[1]
        d.line([left, y, right, y], fill=(225, 225, 225))
        d.text((5, y - 6), f"{10 ** v:.3g}", fill="black")
        v += 0.5
    for k in range(6):
        s = steps[0] + (steps[-1] - steps[0]) * k / 5
        x = xy(s, 10 ** lo)[0]
        d.text((x - 10, bottom + 6), f"{int(s)}", fill="black")
    d.line([xy(s, l) for s, l in zip(steps, losses)], fill=(170, 200, 240), width=1)
    d.line([xy(s, l) for s, l in zip(steps, smooth)], fill=(20, 60, 170), width=2)
    d.text((left, 8), f"training loss (epsilon MSE per step, log scale; dark: {window}-step mean)", fill="black")
    d.text((width // 2 - 20, height - 22), "optimizer step", fill="black")
    image.save(path)
