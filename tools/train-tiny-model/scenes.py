"""The procedural world: scenes of one or two flat shapes on a coloured background, their
captions, and the held-out colour × shape × background triples never drawn in training.

The C# twin (src/AsyncDiffusion/Evaluation/ShapeScenes.cs) uses the same palette, shape list,
geometry and held-out rule; keep the two in step."""
import math
import random

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 220, 30),
    "orange": (245, 135, 20),
    "purple": (135, 45, 180),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "star", "ring"]
SIZES = {"small": 0.24, "medium": 0.36, "large": 0.50}  # bounding-box side / image side
POSITIONS = {
    "center": (0.5, 0.5), "left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28), "bottom": (0.5, 0.72),
    "top left": (0.28, 0.28), "top right": (0.72, 0.28), "bottom left": (0.28, 0.72), "bottom right": (0.72, 0.72),
}
# Two objects sit at opposite places so they never overlap.
PAIRS = [("left", "right"), ("top", "bottom"), ("top left", "bottom right"), ("top right", "bottom left")]
STAR_INNER = 0.45  # inner / outer radius
RING_INNER = 0.55  # hole radius / outer radius


def is_held_out(colour, shape, background):
    """One colour per (shape, background) pair: 40 of the 280 triples."""
    c, s, b = COLOUR_NAMES.index(colour), SHAPES.index(shape), COLOUR_NAMES.index(background)
    return (c + 2 * s + 3 * b) % 8 == 1


def held_out_triples():
    return [(c, s, b) for s in SHAPES for b in COLOUR_NAMES for c in COLOUR_NAMES if c != b and is_held_out(c, s, b)]


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(obj, say_center):
    words = []
    if obj["size"] != "medium":
        words.append(obj["size"])
    words += [obj["colour"], obj["shape"]]
    phrase = f"{_article(words[0])} {' '.join(words)}"
    pos = obj["position"]
    if pos == "center":
        return phrase + (" in the center" if say_center else "")
    if pos in ("left", "right"):
        return phrase + f" on the {pos}"
    return phrase + f" at the {pos}"


def caption(scene, say_center=False, say_background=True):
    text = " and ".join(object_phrase(o, say_center) for o in scene["objects"])
    if say_background:
        text += f" on {_article(scene['background'])} {scene['background']} background"
    return text


def sample_scene(rng, two_objects_rate=0.25):
    """A training scene whose objects avoid every held-out triple."""
    while True:
        background = rng.choice(COLOUR_NAMES)
        if rng.random() < two_objects_rate:
            places = list(rng.choice(PAIRS))
            rng.shuffle(places)
            sizes = [rng.choice(["small", "medium"]) for _ in places]
        else:
            places = [rng.choice(list(POSITIONS))]
            sizes = [rng.choice(list(SIZES))]
        objects = []
        for place, size in zip(places, sizes):
            colour = rng.choice([c for c in COLOUR_NAMES if c != background])
            objects.append({"shape": rng.choice(SHAPES), "colour": colour, "size": size, "position": place})
        if not any(is_held_out(o["colour"], o["shape"], background) for o in objects):
            return {"background": background, "objects": objects}


def shape_polygon(shape, cx, cy, side):
    """Outline points (image coordinates) for triangle and star; None for the round shapes and square."""
    r = side / 2
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "star":
        pts = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * STAR_INNER
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        return pts
    return None


def render(scene, size, rng, supersample=4):
    """Draws the scene (jittered sizes and positions) with anti-aliased edges."""
    big = size * supersample
    image = Image.new("RGB", (big, big), COLOURS[scene["background"]])
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        side = SIZES[obj["size"]] * rng.uniform(0.92, 1.08) * big
        fx, fy = POSITIONS[obj["position"]]
        cx = (fx + rng.uniform(-0.03, 0.03)) * big
        cy = (fy + rng.uniform(-0.03, 0.03)) * big
        fill = COLOURS[obj["colour"]]
        r = side / 2
        if obj["shape"] in ("circle", "ring"):
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            if obj["shape"] == "ring":
                h = r * RING_INNER
                draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=COLOURS[scene["background"]])
        elif obj["shape"] == "square":
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(shape_polygon(obj["shape"], cx, cy, side), fill=fill)
    return image.resize((size, size), Image.BOX)


if __name__ == "__main__":
    rng = random.Random(0)
    print(len(held_out_triples()), "held-out triples")
    for _ in range(8):
        s = sample_scene(rng)
        print(caption(s, say_center=rng.random() < 0.5))
