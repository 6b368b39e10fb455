namespace Memo.Model;

/// <summary>One parameter tensor of the model, in Memo's internal layout (linear weights are [out, in]).</summary>
/// <param name="Name">Internal name, e.g. "layers.3.qkv".</param>
/// <param name="Shape">Shape in elements.</param>
/// <param name="Decay">Whether AdamW applies weight decay (matrices and embeddings, not norms or biases).</param>
/// <param name="Layer">Layer index, or -1 for embeddings, final norm and head.</param>
public sealed record ParamSpec(string Name, long[] Shape, bool Decay, int Layer)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>Indices of one layer's parameters in the <see cref="ParameterLayout"/>; -1 where the family has none.</summary>
public readonly record struct LayerParams(int Norm1, int Norm1Bias, int Qkv, int QkvBias, int Out, int OutBias,
    int Norm2, int Norm2Bias, int Up, int UpBias, int Down, int DownBias);

/// <summary>
/// The ordered list of a model's parameters and their offsets in one contiguous block. The same layout
/// is used for weights, gradients and both AdamW moments, so every optimizer pass is one flat loop.
/// </summary>
public sealed class ParameterLayout
{
    private readonly List<ParamSpec> _specs = [];
    private readonly List<long> _offsets = [];

    public ParameterLayout(ModelConfig cfg)
    {
        Config = cfg;
        long c = cfg.HiddenSize, f = cfg.IntermediateSize, v = cfg.VocabSize;
        bool bias = cfg.HasBiases;
        Embed = Add("embed", [v, c], decay: true, -1);
        Positions = cfg.HasLearnedPositions ? Add("pos", [cfg.MaxPositions, c], decay: true, -1) : -1;
        var layers = new LayerParams[cfg.NumLayers];
        for (int l = 0; l < cfg.NumLayers; l++)
        {
            string p = $"layers.{l}.";
            int n1 = Add(p + "norm1", [c], false, l);
            int n1b = bias ? Add(p + "norm1_bias", [c], false, l) : -1;
            int qkv = Add(p + "qkv", [cfg.QkvSize, c], true, l);
            int qkvb = bias ? Add(p + "qkv_bias", [cfg.QkvSize], false, l) : -1;
            int o = Add(p + "out", [c, (long)cfg.NumHeads * cfg.HeadDim], true, l);
            int ob = bias ? Add(p + "out_bias", [c], false, l) : -1;
            int n2 = Add(p + "norm2", [c], false, l);
            int n2b = bias ? Add(p + "norm2_bias", [c], false, l) : -1;
            long upRows = ActivationInventory.UpWidth(cfg);
            int up = Add(p + "up", [upRows, c], true, l);
            int upb = bias ? Add(p + "up_bias", [upRows], false, l) : -1;
            int down = Add(p + "down", [c, f], true, l);
            int downb = bias ? Add(p + "down_bias", [c], false, l) : -1;
            layers[l] = new LayerParams(n1, n1b, qkv, qkvb, o, ob, n2, n2b, up, upb, down, downb);
        }
        Layers = layers;
        NormF = Add("norm_f", [c], false, -1);
        NormFBias = bias ? Add("norm_f_bias", [c], false, -1) : -1;
        Head = cfg.TiedHead ? Embed : Add("head", [v, c], true, -1);
    }

    public ModelConfig Config { get; }

    public IReadOnlyList<ParamSpec> Specs => _specs;

    public IReadOnlyList<LayerParams> Layers { get; }

    public int Embed { get; }

    public int Positions { get; }

    public int NormF { get; }

    public int NormFBias { get; }

    /// <summary>The output head's parameter (the embedding when tied).</summary>
    public int Head { get; }

    public long TotalElements { get; private set; }

    public long Offset(int index) => _offsets[index];

    public int IndexOf(string name)
    {
        for (int i = 0; i < _specs.Count; i++)
        {
            if (_specs[i].Name == name) return i;
        }
        return -1;
    }

    private int Add(string name, long[] shape, bool decay, int layer)
    {
        var spec = new ParamSpec(name, shape, decay, layer);
        _specs.Add(spec);
        // Keep every tensor 64-byte aligned (16 floats) for the vector kernels.
        _offsets.Add(TotalElements);
        TotalElements = checked(TotalElements + (spec.Elements + 15) / 16 * 16);
        return _specs.Count - 1;
    }
}
