namespace AsyncDiffusion.Evaluation;

/// <summary>A named colour of the shapes world.</summary>
public sealed record NamedColour(string Name, byte R, byte G, byte B);

/// <summary>One shape in a scene: its kind, colour, size word (small, medium, large) and place (center, left, top left, …).</summary>
public sealed record ShapeObject(string Shape, string Colour, string Size = "medium", string Position = "center");

/// <summary>A scene of the shapes world: a background colour and one or two shapes. The first shape is the main object.</summary>
public sealed record ShapeScene(string Background, IReadOnlyList<ShapeObject> Objects)
{
    public ShapeObject Main => Objects[0];

    /// <summary>The plain-English caption, in the training grammar ("a small yellow star at the top left on a purple background").</summary>
    public string Caption => ShapeWorld.Caption(this);
}

/// <summary>
/// The procedural world the built-in model was trained on: palette, shapes, sizes, positions,
/// caption grammar and the held-out colour × shape × background triples. It is the C# twin of
/// tools/train-tiny-model/scenes.py; the two must stay in step.
/// </summary>
public static class ShapeWorld
{
    public static IReadOnlyList<NamedColour> Colours { get; } =
    [
        new("red", 220, 30, 30),
        new("green", 30, 170, 50),
        new("blue", 30, 70, 220),
        new("yellow", 245, 220, 30),
        new("orange", 245, 135, 20),
        new("purple", 135, 45, 180),
        new("white", 245, 245, 245),
        new("black", 20, 20, 20),
    ];

    public static IReadOnlyList<string> Shapes { get; } = ["circle", "square", "triangle", "star", "ring"];

    /// <summary>Bounding-box side as a fraction of the image side.</summary>
    public static IReadOnlyDictionary<string, double> Sizes { get; } = new Dictionary<string, double> { ["small"] = 0.24, ["medium"] = 0.36, ["large"] = 0.50 };

    /// <summary>Centre of the shape as fractions of the image (x, y).</summary>
    public static IReadOnlyDictionary<string, (double X, double Y)> Positions { get; } = new Dictionary<string, (double, double)>
    {
        ["center"] = (0.5, 0.5), ["left"] = (0.28, 0.5), ["right"] = (0.72, 0.5), ["top"] = (0.5, 0.28), ["bottom"] = (0.5, 0.72),
        ["top left"] = (0.28, 0.28), ["top right"] = (0.72, 0.28), ["bottom left"] = (0.28, 0.72), ["bottom right"] = (0.72, 0.72),
    };

    public const double StarInnerRadius = 0.45;
    public const double RingHoleRadius = 0.55;

    public static NamedColour Colour(string name) =>
        Colours.FirstOrDefault(c => c.Name == name) ?? throw new AsyncDiffusionException($"Unknown colour '{name}'; expected one of: {string.Join(", ", Colours.Select(c => c.Name))}.");

    private static int ColourIndex(string name) => Colours.ToList().IndexOf(Colour(name));

    private static int ShapeIndex(string shape)
    {
        int i = Shapes.ToList().IndexOf(shape);
        return i >= 0 ? i : throw new AsyncDiffusionException($"Unknown shape '{shape}'; expected one of: {string.Join(", ", Shapes)}.");
    }

    /// <summary>One colour per (shape, background) pair is never drawn in training: 40 of the 280 triples.</summary>
    public static bool IsHeldOut(string colour, string shape, string background) =>
        (ColourIndex(colour) + 2 * ShapeIndex(shape) + 3 * ColourIndex(background)) % 8 == 1;

    /// <summary>The held-out (colour, shape, background) triples, by shape, then background.</summary>
    public static IReadOnlyList<(string Colour, string Shape, string Background)> HeldOutTriples { get; } =
        (from s in Shapes
         from b in Colours
         from c in Colours
         where c != b && IsHeldOut(c.Name, s, b.Name)
         select (c.Name, s, b.Name)).ToArray();

    public static string Caption(ShapeScene scene)
    {
        string text = string.Join(" and ", scene.Objects.Select(ObjectPhrase));
        return $"{text} on {Article(scene.Background)} {scene.Background} background";
    }

    private static string ObjectPhrase(ShapeObject o)
    {
        var words = new List<string>();
        if (o.Size != "medium") words.Add(o.Size);
        words.Add(o.Colour);
        words.Add(o.Shape);
        string phrase = $"{Article(words[0])} {string.Join(' ', words)}";
        return o.Position switch
        {
            "center" => phrase,
            "left" or "right" => $"{phrase} on the {o.Position}",
            _ => $"{phrase} at the {o.Position}",
        };
    }

    private static string Article(string word) => "aeiou".Contains(word[0]) ? "an" : "a";

    /// <summary>
    /// <paramref name="count"/> single-shape scenes over the held-out triples (none seen in
    /// training), spread over shapes and colours, cycling through three forms: plain ("a red
    /// circle on a blue background"), large, and placed (left, right, top, bottom).
    /// </summary>
    public static IReadOnlyList<ShapeScene> EvaluationScenes(int count)
    {
        if (count < 1) throw new AsyncDiffusionException($"The number of evaluation prompts is {count}; expected at least 1.");
        var places = new[] { "left", "right", "top", "bottom" };
        var scenes = new List<ShapeScene>(count);
        for (int k = 0; k < count; k++)
        {
            var (colour, shape, background) = HeldOutTriples[k * 9 % HeldOutTriples.Count];
            var main = (k % 3) switch
            {
                0 => new ShapeObject(shape, colour),
                1 => new ShapeObject(shape, colour, Size: "large"),
                _ => new ShapeObject(shape, colour, Position: places[k / 3 % places.Length]),
            };
            scenes.Add(new ShapeScene(background, [main]));
        }
        return scenes;
    }
}
