using AsyncDiffusion.Evaluation;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Evaluation;

public class ShapeJudgeTests
{
    public static TheoryData<string, string> SizesAndPlaces() => new()
    {
        { "medium", "center" }, { "large", "center" }, { "small", "center" },
        { "medium", "left" }, { "medium", "bottom right" }, { "large", "top left" }, { "small", "top" },
    };

    [Theory]
    [MemberData(nameof(SizesAndPlaces))]
    public void TheJudgeReadsEveryColourShapeAndBackgroundOfRenderedScenes(string size, string position)
    {
        var wrong = new List<string>();
        foreach (var background in ShapeWorld.Colours)
            foreach (var colour in ShapeWorld.Colours.Where(c => c != background))
                foreach (var shape in ShapeWorld.Shapes)
                {
                    var scene = new ShapeScene(background.Name, [new ShapeObject(shape, colour.Name, size, position)]);
                    var v = ShapeJudge.Judge(ShapeRenderer.Render(scene, 64), scene);
                    if (!(v.BackgroundRight && v.ObjectColourRight && v.ShapeRight && v.PositionRight != false))
                        wrong.Add($"{scene.Caption}: saw {v.Background} bg, {v.ObjectColour} {v.Shape} at {v.Centre} ({v.Features})");
                }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void TheJudgeAlsoReadsLargerImagesAndTwoShapeScenesByTheBiggerShape()
    {
        var scene = new ShapeScene("green", [new ShapeObject("star", "white", "large", "left"), new ShapeObject("circle", "red", "small", "right")]);
        var v = ShapeJudge.Judge(ShapeRenderer.Render(scene, 128), scene);
        Assert.True(v.BackgroundRight && v.ObjectColourRight && v.ShapeRight && v.PositionRight == true, v.ToString());
    }

    [Fact]
    public void AnEmptyBackgroundHasNoObjectAndWrongAnswers()
    {
        var scene = new ShapeScene("blue", [new ShapeObject("circle", "red")]);
        var v = ShapeJudge.Judge(ShapeRenderer.Render(new ShapeScene("blue", []), 64), scene);
        Assert.True(v.BackgroundRight);
        Assert.False(v.ObjectColourRight);
        Assert.False(v.ShapeRight);
        Assert.Null(v.Shape);
    }

    [Fact]
    public void AWrongShapeOrColourIsReportedAsWrong()
    {
        var drawn = new ShapeScene("yellow", [new ShapeObject("square", "purple")]);
        var asked = new ShapeScene("black", [new ShapeObject("triangle", "orange")]);
        var v = ShapeJudge.Judge(ShapeRenderer.Render(drawn, 64), asked);
        Assert.Equal(("yellow", "purple", "square"), (v.Background, v.ObjectColour, v.Shape));
        Assert.False(v.BackgroundRight || v.ObjectColourRight || v.ShapeRight);
    }

    [Fact]
    public void NoiseAroundTheSceneDoesNotFoolTheJudge()
    {
        var scene = new ShapeScene("purple", [new ShapeObject("ring", "yellow", "large")]);
        var image = ShapeRenderer.Render(scene, 64);
        var random = new Random(3);
        var noisy = image.Pixels.Select(p => (byte)Math.Clamp(p + random.Next(-25, 26), 0, 255)).ToArray();
        var v = ShapeJudge.Judge(new RgbImage(64, 64, noisy), scene);
        Assert.True(v.BackgroundRight && v.ObjectColourRight && v.ShapeRight, v.ToString());
    }
}
