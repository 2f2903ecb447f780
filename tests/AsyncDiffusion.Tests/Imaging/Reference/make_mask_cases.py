#!/usr/bin/env python3
"""Writes mask_cases.json: reference outputs of Pillow and OpenCV for the image operations
AUTOMATIC1111 applies to inpainting masks (resampling, resize modes, mask blur, masked-content
fill, overlay). Run with Debian's python3 (python3-pil 9.4, python3-opencv 4.6, python3-numpy):
    /usr/bin/python3 make_mask_cases.py > mask_cases.json
The A1111 steps are re-stated here from their documented behaviour (resize modes, fill
layers, overlay); only Pillow and OpenCV are called as references."""
import base64, json, sys
import numpy as np, cv2, PIL
from PIL import Image, ImageFilter, ImageOps

rs = np.random.RandomState(2024)
b64 = lambda a: base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode()

def pil(img):
    a = np.asarray(img)
    return {"width": img.width, "height": img.height, "channels": 1 if a.ndim == 2 else a.shape[2], "pixels": b64(a)}

def noise_image(w, h, mode):
    ch = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    a = rs.randint(0, 256, size=(h, w, ch), dtype=np.uint8)
    return Image.fromarray(a[:, :, 0] if ch == 1 else a, mode)

def blob_mask(w, h, soft=False):
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((xx - w * 0.4) / (w * 0.25), (yy - h * 0.55) / (h * 0.3))
    a = np.where(d < 1, 255, 0).astype(np.uint8)
    if soft:
        a = np.clip((1.4 - d) * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(a, "L")

def lanczos(im, size):
    return im.resize(size, resample=Image.LANCZOS)

def stretch_edge(im, size, box):
    # Pillow's default filter (bicubic) over a zero-width box: the bars of mode 2.
    return im.resize(size, box=box)

def resize_image(mode, im, width, height):
    """A1111's resize modes as Pillow calls: 0 stretch, 1 cover and centre-crop, 2 fit and
    stretch the outermost rows/columns into the bars. No upscaler: Lanczos throughout."""
    if mode == 0:
        return lanczos(im, (width, height))
    wider_target = width * im.height > im.width * height      # width/height > im.width/im.height
    taller_target = width * im.height < im.width * height
    match_width = wider_target if mode == 1 else taller_target
    scaled_w = width if match_width else im.width * height // im.height
    scaled_h = im.height * width // im.width if match_width else height
    scaled = lanczos(im, (scaled_w, scaled_h))
    canvas = Image.new("RGBA" if im.mode == "RGBA" else "RGB", (width, height))
    left, top = width // 2 - scaled_w // 2, height // 2 - scaled_h // 2
    canvas.paste(scaled, box=(left, top))
    if mode == 2 and taller_target and top > 0:
        canvas.paste(stretch_edge(scaled, (width, top), (0, 0, width, 0)), box=(0, 0))
        canvas.paste(stretch_edge(scaled, (width, top), (0, scaled_h, width, scaled_h)), box=(0, top + scaled_h))
    if mode == 2 and wider_target and left > 0:
        canvas.paste(stretch_edge(scaled, (left, height), (0, 0, 0, height)), box=(0, 0))
        canvas.paste(stretch_edge(scaled, (left, height), (scaled_w, 0, scaled_w, height)), box=(left + scaled_w, 0))
    return canvas

FILL_LAYERS = [256, 64, 16, 16, 4, 4, 4, 4, 2, 2, 0]   # blur radius of each composited layer, in order

def fill(image, mask):
    """Masked content 'fill': the unmasked colours, blurred ever less, composited over each other."""
    keep = ImageOps.invert(mask.convert("L"))
    premultiplied = Image.new("RGBa", image.size)
    premultiplied.paste(image.convert("RGBA").convert("RGBa"), mask=keep)
    result = Image.new("RGBA", image.size)
    layers = {}
    for radius in FILL_LAYERS:
        if radius not in layers:
            layers[radius] = premultiplied.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        result.alpha_composite(layers[radius])
    return result.convert("RGB")

def overlay_of(image, mask_for_overlay):
    masked = Image.new("RGBa", (image.width, image.height))
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert("L")))
    return masked.convert("RGBA")

def apply_overlay(generated, paste_loc, overlay):
    if paste_loc is not None:
        x, y, w, h = paste_loc
        base = Image.new("RGBA", (overlay.width, overlay.height))
        base.paste(resize_image(1, generated, w, h), (x, y))
        generated = base
    out = generated.convert("RGBA")
    out.alpha_composite(overlay)
    return out.convert("RGB")

cases = {"pillow": PIL.__version__, "opencv": cv2.__version__, "resize": [], "resize_image": [], "blur": [], "fill": [], "overlay": [], "binary_mask": []}

for (w, h, tw, th, mode, f) in [(37, 23, 64, 48, "L", "lanczos"), (100, 70, 32, 40, "L", "lanczos"), (64, 64, 8, 8, "L", "bicubic"),
                                 (72, 40, 9, 5, "L", "bicubic"), (30, 20, 16, 24, "RGB", "lanczos"), (13, 9, 13, 30, "RGB", "bicubic")]:
    src = noise_image(w, h, mode)
    out = src.resize((tw, th), resample=Image.LANCZOS if f == "lanczos" else Image.BICUBIC)
    cases["resize"].append({"filter": f, "input": pil(src), "output": pil(out)})
for box in [(0, 0, 20, 0), (0, 11, 20, 11), (0, 0, 0, 11), (20, 0, 20, 11)]:
    src = noise_image(20, 11, "RGB")
    size = (20, 5) if box[1] == box[3] else (6, 11)
    out = src.resize(size, resample=Image.LANCZOS, box=box)
    cases["resize"].append({"filter": "lanczos", "box": list(box), "input": pil(src), "output": pil(out)})

for (w, h, tw, th, mode, m) in [(50, 30, 32, 32, "L", 1), (30, 50, 32, 32, "RGB", 1), (64, 64, 40, 24, "RGB", 1), (33, 47, 24, 40, "L", 2),
                                (47, 33, 40, 24, "RGB", 2), (40, 40, 24, 40, "RGB", 2), (40, 20, 32, 32, "L", 0)]:
    src = noise_image(w, h, mode) if mode == "RGB" else blob_mask(w, h, soft=True)
    out = resize_image(m, src, tw, th)
    cases["resize_image"].append({"mode": m, "input": pil(src), "output": pil(out.convert(mode))})

for sigma in [1, 2, 4, 7]:
    src = blob_mask(41, 29)
    k = 2 * int(2.5 * sigma + 0.5) + 1
    a = np.array(src)
    cases["blur"].append({"sigma": sigma, "axis": "x", "input": pil(src), "output": pil(Image.fromarray(cv2.GaussianBlur(a, (k, 1), sigma)))})
    cases["blur"].append({"sigma": sigma, "axis": "y", "input": pil(src), "output": pil(Image.fromarray(cv2.GaussianBlur(a, (1, k), sigma)))})

for (w, h, soft) in [(24, 20, False), (31, 17, True)]:
    img = noise_image(w, h, "RGB")
    mask = blob_mask(w, h, soft).convert("RGB")
    cases["fill"].append({"image": pil(img), "mask": pil(mask.convert("L")), "output": pil(fill(img, mask))})

img = noise_image(40, 30, "RGB")
gen = noise_image(40, 30, "RGB")
m = blob_mask(40, 30, soft=True)
ov = overlay_of(img, m)
cases["overlay"].append({"image": pil(img), "mask": pil(m), "generated": pil(gen), "overlay": pil(ov), "output": pil(apply_overlay(gen, None, ov))})
big = noise_image(70, 50, "RGB")
m2 = Image.new("L", (70, 50)); m2.paste(blob_mask(30, 20, soft=True), (25, 12))
gen2 = noise_image(32, 24, "RGB")
ov2 = overlay_of(big, m2)
cases["overlay"].append({"image": pil(big), "mask": pil(m2), "generated": pil(gen2), "paste": [22, 10, 36, 27], "overlay": pil(ov2), "output": pil(apply_overlay(gen2, (22, 10, 36, 27), ov2))})

for round_ in [True, False]:
    rgba = noise_image(9, 7, "RGBA")
    out = rgba.split()[-1].convert("L")
    if round_:
        out = out.point(lambda x: 255 if x > 128 else 0)
    cases["binary_mask"].append({"round": round_, "input": pil(rgba), "output": pil(out)})
rgb = noise_image(9, 7, "RGB")
cases["binary_mask"].append({"round": True, "input": pil(rgb), "output": pil(rgb.convert("L"))})

json.dump(cases, sys.stdout, separators=(",", ":"))
