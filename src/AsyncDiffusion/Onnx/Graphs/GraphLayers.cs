namespace AsyncDiffusion.Onnx.Graphs;

/// <summary>
/// The neural-network layers Stable Diffusion is made of, written as ONNX nodes with parameters
/// named as in diffusers' state dicts. Residual branches end in layers initialised with a small
/// gain (as diffusion codebases zero-initialise them), which keeps activations at a steady scale
/// through deep random networks.
/// </summary>
internal sealed class GraphLayers(OnnxGraphBuilder g)
{
    public const double ResidualGain = 0.2;

    public OnnxGraphBuilder Graph => g;

    public string Conv(string x, string name, int cin, int cout, int kernel, int stride = 1, int[]? pads = null, bool bias = true, double gain = 1.0)
    {
        int p = kernel / 2;
        var w = g.Parameter($"{name}.weight", [cout, cin, kernel, kernel], gain / Math.Sqrt(cin * kernel * kernel));
        var inputs = bias ? new[] { x, w, g.Parameter($"{name}.bias", [cout], 0.02) } : [x, w];
        return g.Op("Conv", inputs, ("kernel_shape", new long[] { kernel, kernel }), ("strides", new long[] { stride, stride }),
            ("pads", pads ?? [p, p, p, p]));
    }

    /// <summary>x·W (+ b): W is [out, in] in the state dict and stored [in, out], as exporters fold the transpose into the initializer.</summary>
    public string Linear(string x, string name, int din, int dout, bool bias = true, double gain = 1.0)
    {
        var y = g.Op("MatMul", [x, g.Parameter($"{name}.weight", [dout, din], ParameterInit.Uniform(gain / Math.Sqrt(din)), transposed: true)]);
        return bias ? g.Op("Add", [y, g.Parameter($"{name}.bias", [dout], 0.02)]) : y;
    }

    public string GroupNorm(string x, string name, int channels, int groups, float eps) =>
        g.Op("GroupNormalization", [x, g.Filled($"{name}.weight", [channels], 1f), g.Filled($"{name}.bias", [channels], 0f)],
            ("epsilon", eps), ("num_groups", groups));

    public string LayerNorm(string x, string name, int dim, float eps = 1e-5f) =>
        g.Op("LayerNormalization", [x, g.Filled($"{name}.weight", [dim], 1f), g.Filled($"{name}.bias", [dim], 0f)],
            ("axis", -1), ("epsilon", eps));

    public string SiLU(string x) => g.Op("Mul", [x, g.Op("Sigmoid", [x])]);

    /// <summary>CLIP's quick GELU: x·σ(1.702x).</summary>
    public string QuickGelu(string x) => g.Op("Mul", [x, g.Op("Sigmoid", [g.Op("Mul", [x, g.Float(1.702f)])])]);

    public string Gelu(string x) => g.Op("Gelu", [x]);

    /// <summary>[B, C, H, W] → [B, H·W, C].</summary>
    public string ToTokens(string x) => g.Op("Transpose", [g.Op("Reshape", [x, g.Int64(0, 0, -1)])], ("perm", new long[] { 0, 2, 1 }));

    /// <summary>[B, H·W, C] → the shape of <paramref name="like"/> ([B, C, H, W]).</summary>
    public string FromTokens(string tokens, string like) =>
        g.Op("Reshape", [g.Op("Transpose", [tokens], ("perm", new long[] { 0, 2, 1 })), g.Op("Shape", [like])]);

    /// <summary>
    /// Multi-head scaled dot-product attention: queries from <paramref name="x"/> [B, N, dq],
    /// keys and values from <paramref name="context"/> [B, M, dkv] (x itself for self-attention).
    /// </summary>
    public string Attention(string x, string context, string name, int dq, int dkv, int heads, string q = "to_q", string k = "to_k",
        string v = "to_v", string o = "to_out.0", bool qkvBias = false, string? mask = null)
    {
        int head = dq / heads;
        string Split(string t, long[] perm) =>
            g.Op("Transpose", [g.Op("Reshape", [t, g.Int64(0, 0, heads, head)])], ("perm", perm));

        var query = Split(g.Op("Mul", [Linear(x, $"{name}.{q}", dq, dq, qkvBias), g.Float((float)(1.0 / Math.Sqrt(head)))]), [0, 2, 1, 3]);
        var key = Split(Linear(context, $"{name}.{k}", dkv, dq, qkvBias), [0, 2, 3, 1]);
        var value = Split(Linear(context, $"{name}.{v}", dkv, dq, qkvBias), [0, 2, 1, 3]);
        var scores = g.Op("MatMul", [query, key]);
        if (mask is not null) scores = g.Op("Add", [scores, mask]);
        var attended = g.Op("MatMul", [g.Op("Softmax", [scores], ("axis", -1)), value]);
        var merged = g.Op("Reshape", [g.Op("Transpose", [attended], ("perm", new long[] { 0, 2, 1, 3 })), g.Int64(0, 0, dq)]);
        return Linear(merged, $"{name}.{o}", dq, dq, bias: true, gain: ResidualGain);
    }

    /// <summary>2× nearest-neighbour upsampling of [B, C, H, W].</summary>
    public string Upsample2x(string x) =>
        g.Op("Resize", [x, "", g.Float32([1f, 1f, 2f, 2f], [4])], ("mode", "nearest"), ("nearest_mode", "floor"),
            ("coordinate_transformation_mode", "asymmetric"));
}
