namespace Memo.CostModel;

/// <summary>
/// Per-token sizes and FLOPs of one decoder layer, all read from <see cref="ActivationInventory"/>
/// (the single source of truth for activation sizes; nothing here re-derives them from the shape).
/// Bytes are for the whole layer before any parallel sharding; <see cref="MemoryModel"/> divides them
/// by the number of devices that share a sequence.
/// </summary>
public sealed class LayerShape
{
    // The four GEMMs of a layer as (producer of the input row, producer of the output row).
    private static readonly (LayerOp Input, LayerOp Output)[] Gemms =
    [
        (LayerOp.Norm1, LayerOp.QkvProjection),
        (LayerOp.Attention, LayerOp.OutProjection),
        (LayerOp.Norm2, LayerOp.MlpUp),
        (LayerOp.MlpActivation, LayerOp.MlpDown),
    ];

    public LayerShape(ModelConfig model, Precision precision)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(precision);
        Model = model;
        Precision = precision;
        var rows = ActivationInventory.For(model);
        var savedSizes = new List<long>();
        foreach (var r in rows)
        {
            long bytes = checked(r.ElementsPerToken(model) * precision.BytesOf(r));
            switch (r.Kind)
            {
                case ActivationKind.Skeleton: SkeletonBytesPerToken += bytes; savedSizes.Add(bytes); break;
                case ActivationKind.TokenLocal:
                    TokenLocalBytesPerToken += bytes;
                    savedSizes.Add(bytes);
                    if (!r.AlwaysF32 && r.Producer is LayerOp.Norm1 or LayerOp.Norm2 or LayerOp.MlpActivation) SelectiveBytesPerToken += bytes;
                    break;
                default: TransientBytesPerToken += bytes; break;
            }
        }
        var input = rows[ActivationInventory.Input];
        ResidualWidth = input.ElementsPerToken(model);
        InputBytesPerToken = checked(ResidualWidth * precision.BytesOf(input));
        savedSizes.Sort();
        LargestTwoSavedBytesPerToken = savedSizes.Count >= 2 ? savedSizes[^1] + savedSizes[^2] : savedSizes.Sum();

        QkvWidth = WidthOf(LayerOp.QkvProjection);
        AttentionWidth = WidthOf(LayerOp.Attention);
        // Token-wise recompute rebuilds the saved token-local rows from the skeleton: it re-runs every GEMM
        // up to the last op that produces one (LayerOp is in forward order), and none after it.
        var lastTokenLocal = rows.Where(r => r.Kind == ActivationKind.TokenLocal).Max(r => r.Producer);
        foreach (var (inOp, outOp) in Gemms)
        {
            double f = 2.0 * WidthOf(inOp) * WidthOf(outOp);
            GemmFlopsPerToken += f;
            if (outOp <= lastTokenLocal) TokenLocalRecomputeFlopsPerToken += f;
        }
        HeadFlopsPerToken = 2.0 * ResidualWidth * model.VocabSize;
    }

    public ModelConfig Model { get; }

    public Precision Precision { get; }

    /// <summary>Always-swapped rows (layer input, attention output, log-sum-exp), bytes per token.</summary>
    public long SkeletonBytesPerToken { get; }

    /// <summary>Saved rows that can be recomputed token by token, bytes per token.</summary>
    public long TokenLocalBytesPerToken { get; }

    /// <summary>
    /// Saved rows written by element-wise ops (norm outputs, MLP activation output; their fp32 statistics stay),
    /// which selective recomputation drops and rebuilds from their inputs, bytes per token.
    /// </summary>
    public long SelectiveBytesPerToken { get; }

    /// <summary>Rows that live only inside the layer's pass, bytes per token.</summary>
    public long TransientBytesPerToken { get; }

    /// <summary>Everything backward needs: skeleton + token-local.</summary>
    public long SavedBytesPerToken => SkeletonBytesPerToken + TokenLocalBytesPerToken;

    /// <summary>The layer input row (what full recomputation keeps), bytes per token.</summary>
    public long InputBytesPerToken { get; }

    /// <summary>Elements per token of the residual stream (the input row).</summary>
    public long ResidualWidth { get; }

    /// <summary>The two largest saved rows; their gradients are alive together in the MLP backward.</summary>
    public long LargestTwoSavedBytesPerToken { get; }

    /// <summary>Elements per token of the fused q,k,v row.</summary>
    public long QkvWidth { get; }

    /// <summary>Elements per token of the attention output row (heads x head dim).</summary>
    public long AttentionWidth { get; }

    /// <summary>Forward FLOPs per token of the four GEMMs (2 x input width x output width each).</summary>
    public double GemmFlopsPerToken { get; }

    /// <summary>Forward FLOPs per token of the GEMMs that token-wise recompute re-runs (those producing saved rows).</summary>
    public double TokenLocalRecomputeFlopsPerToken { get; }

    /// <summary>Forward FLOPs per token of the LM head (2 x hidden x vocab).</summary>
    public double HeadFlopsPerToken { get; }

    /// <summary>
    /// Forward FLOPs of causal attention for <paramref name="sequences"/> sequences of <paramref name="seq"/> tokens:
    /// QK^T and PV are 2 x 2 x s^2 x width, halved by the causal mask.
    /// </summary>
    public double AttentionFlops(long sequences, long seq) => sequences * 2.0 * seq * (double)seq * AttentionWidth;

    /// <summary>Model FLOPs of one forward layer for the batch (GEMMs + causal attention).</summary>
    public double LayerForwardFlops(long sequences, long seq) =>
        GemmFlopsPerToken * sequences * seq + AttentionFlops(sequences, seq);

    /// <summary>Model FLOPs of one training step: 3 x forward (backward counted as 2 x), no recomputation counted.</summary>
    public double ModelFlopsPerStep(long sequences, long seq) =>
        3.0 * (Model.NumLayers * LayerForwardFlops(sequences, seq) + HeadFlopsPerToken * sequences * seq);

    /// <summary>
    /// Model FLOPs of one training step with attention counted over the full s x s score matrix (the convention of
    /// MFU figures that ignore the causal mask): <see cref="ModelFlopsPerStep"/> plus the masked half of attention.
    /// </summary>
    public double ModelFlopsPerStepFullAttention(long sequences, long seq) =>
        ModelFlopsPerStep(sequences, seq) + 3.0 * Model.NumLayers * AttentionFlops(sequences, seq);

    private long WidthOf(LayerOp op)
    {
        long w = 0;
        foreach (var r in ActivationInventory.For(Model))
        {
            if (r.Producer == op && !r.AlwaysF32) w += r.ElementsPerToken(Model);
        }
        return w;
    }
}
