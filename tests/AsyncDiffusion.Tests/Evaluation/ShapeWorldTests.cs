using AsyncDiffusion.Evaluation;

namespace AsyncDiffusion.Tests.Evaluation;

public class ShapeWorldTests
{
    // Captions printed by tools/train-tiny-model/scenes.py for the same scenes.
    [Theory]
    [InlineData("a small blue ring at the top right on a white background", "white", "ring", "blue", "small", "top right")]
    [InlineData("a large green ring at the top left on an orange background", "orange", "ring", "green", "large", "top left")]
    [InlineData("a black ring at the bottom left on a yellow background", "yellow", "ring", "black", "medium", "bottom left")]
    [InlineData("an orange star on the left on a black background", "black", "star", "orange", "medium", "left")]
    [InlineData("a red circle on a blue background", "blue", "circle", "red", "medium", "center")]
    public void CaptionsFollowTheTrainingGrammar(string caption, string background, string shape, string colour, string size, string position) =>
        Assert.Equal(caption, new ShapeScene(background, [new ShapeObject(shape, colour, size, position)]).Caption);

    [Fact]
    public void TwoShapesAreJoinedWithAnd() =>
        Assert.Equal("a blue triangle at the bottom left and a white circle at the top right on a red background",
            new ShapeScene("red", [new ShapeObject("triangle", "blue", "medium", "bottom left"), new ShapeObject("circle", "white", "medium", "top right")]).Caption);

    [Fact]
    public void FortyTriplesAreHeldOutOnePerShapeAndBackground()
    {
        var held = ShapeWorld.HeldOutTriples;
        Assert.Equal(40, held.Count);
        Assert.Equal(40, held.Select(t => (t.Shape, t.Background)).Distinct().Count());
        Assert.All(held, t => Assert.NotEqual(t.Colour, t.Background));
        Assert.All(ShapeWorld.Colours, c => Assert.Equal(5, held.Count(t => t.Colour == c.Name)));
        // The same rule as scenes.is_held_out: (colour + 2·shape + 3·background) mod 8 = 1.
        Assert.Contains(("red", "circle", "yellow"), held);
        Assert.DoesNotContain(("red", "circle", "blue"), held);
    }

    [Fact]
    public void EvaluationPromptsAreHeldOutAndCoverAllFortyTriples()
    {
        var scenes = ShapeWorld.EvaluationScenes(40);
        Assert.Equal(40, scenes.Select(s => (s.Main.Colour, s.Main.Shape, s.Background)).Distinct().Count());
        Assert.All(scenes, s => Assert.True(ShapeWorld.IsHeldOut(s.Main.Colour, s.Main.Shape, s.Background)));
        Assert.Equal(ShapeWorld.Shapes.Order(), ShapeWorld.EvaluationScenes(5).Select(s => s.Main.Shape).Order()); // the first five already cover every shape
        Assert.Equal(scenes.Take(8).Select(s => s.Caption), ShapeWorld.EvaluationScenes(8).Select(s => s.Caption));
    }

    [Fact]
    public void UnknownWordsAreRefusedByName()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => ShapeRenderer.Render(new ShapeScene("blue", [new ShapeObject("hexagon", "red")]), 64));
        Assert.Contains("Unknown shape 'hexagon'", e.Message);
        Assert.Throws<AsyncDiffusionException>(() => ShapeWorld.EvaluationScenes(0));
    }
}
