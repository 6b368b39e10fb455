namespace Memo;

/// <summary>How an activation is treated by the memory policies (see DESIGN.md).</summary>
public enum ActivationKind
{
    /// <summary>Always saved for backward in full: layer input, attention output, attention log-sum-exp.</summary>
    Skeleton,

    /// <summary>Saved for backward, and recomputable row by row from the skeleton (token-local ops only).</summary>
    TokenLocal,

    /// <summary>Lives only inside one layer's forward or backward; never saved.</summary>
    Transient,
}

/// <summary>The op of a decoder layer that produces an activation (the table in DESIGN.md).</summary>
public enum LayerOp
{
    LayerInput,
    Norm1,
    QkvProjection,
    Attention,
    OutProjection,
    Residual1,
    Norm2,
    MlpUp,
    MlpActivation,
    MlpDown,
}

/// <summary>
/// One row of a layer type's activation inventory: the single source of truth for what a layer
/// produces, how large it is per token, and whether backward needs it. The engine's buffers, the
/// memory planner's buffer list and the reports are all derived from these rows.
/// </summary>
/// <param name="Name">Name after the producing op, used for buffer ids and logs.</param>
/// <param name="ElementsPerToken">Elements per token row, a function of the model shape.</param>
/// <param name="Producer">The op that writes it.</param>
/// <param name="Kind">Skeleton, token-local (saved, recomputable) or transient.</param>
/// <param name="AlwaysF32">Statistics (rstd, mean, lse) stay fp32 whatever the activation dtype.</param>
public sealed record ActivationSpec(string Name, Func<ModelConfig, long> ElementsPerToken, LayerOp Producer, ActivationKind Kind, bool AlwaysF32 = false)
{
    public bool NeededByBackward => Kind != ActivationKind.Transient;

    public long Elements(ModelConfig cfg, long tokens) => checked(ElementsPerToken(cfg) * tokens);
}

/// <summary>The ordered activation tables, one per layer type.</summary>
public static class ActivationInventory
{
    // Indices into the rows below; the order is explicit and stable (the tables are arrays, not reflection).
    public const int Input = 0;

    private static readonly ActivationSpec[] LlamaRows =
    [
        new("Input", c => c.HiddenSize, LayerOp.LayerInput, ActivationKind.Skeleton),
        new("Norm1Rstd", _ => 1, LayerOp.Norm1, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm1", c => c.HiddenSize, LayerOp.Norm1, ActivationKind.TokenLocal),
        new("Qkv", c => c.QkvSize, LayerOp.QkvProjection, ActivationKind.TokenLocal),
        new("AttnOut", c => c.HiddenSize, LayerOp.Attention, ActivationKind.Skeleton),
        new("AttnLse", c => c.NumHeads, LayerOp.Attention, ActivationKind.Skeleton, AlwaysF32: true),
        new("AttnProj", c => c.HiddenSize, LayerOp.OutProjection, ActivationKind.Transient),
        new("Residual1", c => c.HiddenSize, LayerOp.Residual1, ActivationKind.TokenLocal),
        new("Norm2Rstd", _ => 1, LayerOp.Norm2, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm2", c => c.HiddenSize, LayerOp.Norm2, ActivationKind.TokenLocal),
        new("MlpUp", UpWidth, LayerOp.MlpUp, ActivationKind.TokenLocal),
        new("MlpAct", c => c.IntermediateSize, LayerOp.MlpActivation, ActivationKind.TokenLocal),
        new("MlpDown", c => c.HiddenSize, LayerOp.MlpDown, ActivationKind.Transient),
    ];

    private static readonly ActivationSpec[] Gpt2Rows =
    [
        new("Input", c => c.HiddenSize, LayerOp.LayerInput, ActivationKind.Skeleton),
        new("Norm1Mean", _ => 1, LayerOp.Norm1, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm1Rstd", _ => 1, LayerOp.Norm1, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm1", c => c.HiddenSize, LayerOp.Norm1, ActivationKind.TokenLocal),
        new("Qkv", c => c.QkvSize, LayerOp.QkvProjection, ActivationKind.TokenLocal),
        new("AttnOut", c => c.HiddenSize, LayerOp.Attention, ActivationKind.Skeleton),
        new("AttnLse", c => c.NumHeads, LayerOp.Attention, ActivationKind.Skeleton, AlwaysF32: true),
        new("AttnProj", c => c.HiddenSize, LayerOp.OutProjection, ActivationKind.Transient),
        new("Residual1", c => c.HiddenSize, LayerOp.Residual1, ActivationKind.TokenLocal),
        new("Norm2Mean", _ => 1, LayerOp.Norm2, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm2Rstd", _ => 1, LayerOp.Norm2, ActivationKind.TokenLocal, AlwaysF32: true),
        new("Norm2", c => c.HiddenSize, LayerOp.Norm2, ActivationKind.TokenLocal),
        new("MlpUp", UpWidth, LayerOp.MlpUp, ActivationKind.TokenLocal),
        new("MlpAct", c => c.IntermediateSize, LayerOp.MlpActivation, ActivationKind.TokenLocal),
        new("MlpDown", c => c.HiddenSize, LayerOp.MlpDown, ActivationKind.Transient),
    ];

    /// <summary>
    /// Width of the MLP up projection's output row: llama's fused gate and up (2F, SwiGLU reads both halves),
    /// gpt2's single up projection (F). The one definition; the MlpUp rows, the model and the measurements use it.
    /// </summary>
    public static long UpWidth(ModelConfig cfg) => cfg.Family == ModelFamily.Llama ? 2L * cfg.IntermediateSize : cfg.IntermediateSize;

    /// <summary>The rows of one layer of <paramref name="cfg"/>'s family, in forward order.</summary>
    public static IReadOnlyList<ActivationSpec> For(ModelConfig cfg) =>
        cfg.Family == ModelFamily.Llama ? LlamaRows : Gpt2Rows;

    /// <summary>Index of the row called <paramref name="name"/>; throws if the family has none.</summary>
    public static int IndexOf(ModelConfig cfg, string name)
    {
        var rows = For(cfg);
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].Name == name) return i;
        }
        throw new ArgumentException($"activation '{name}' is not in the {cfg.ModelType} inventory", nameof(name));
    }

    /// <summary>Elements per token that backward needs, split into skeleton and token-local parts.</summary>
    public static (long Skeleton, long TokenLocal) SavedPerToken(ModelConfig cfg)
    {
        long s = 0, t = 0;
        foreach (var r in For(cfg))
        {
            if (r.Kind == ActivationKind.Skeleton) s += r.ElementsPerToken(cfg);
            else if (r.Kind == ActivationKind.TokenLocal) t += r.ElementsPerToken(cfg);
        }
        return (s, t);
    }

    /// <summary>
    /// Bytes per token that backward needs at <paramref name="bytesPerElement"/> per element (the runtime is fp32),
    /// split into skeleton and token-local parts: the per-token sums every swap size, host budget and copy time uses.
    /// </summary>
    public static (long Skeleton, long TokenLocal) SavedBytesPerToken(ModelConfig cfg, int bytesPerElement)
    {
        var (s, t) = SavedPerToken(cfg);
        return (checked(s * bytesPerElement), checked(t * bytesPerElement));
    }
}
