using System.Globalization;

namespace Memo.Model.Memory;

/// <summary>
/// Typed handle of one buffer of the planned arena: produced by <see cref="MemoryLayout"/> when it lays the buffers
/// out and passed by the model to <see cref="MemoryLayout.Offset(BufferId)"/>, so the two never match names as strings.
/// <see cref="Index"/> is the layer or staging slot of a saved activation, <see cref="Row"/> its inventory row (-1 otherwise).
/// </summary>
public readonly record struct BufferId(BufferKind Kind, int Index = -1, int Row = -1)
{
    /// <summary>Saved activation <paramref name="row"/> of layer <paramref name="layer"/>'s own set (keep, recompute's inputs).</summary>
    public static BufferId LayerActivation(int layer, int row) => new(BufferKind.LayerActivation, layer, row);

    /// <summary>Saved activation <paramref name="row"/> of swap staging slot <paramref name="slot"/> (0 or 1).</summary>
    public static BufferId StagingActivation(int slot, int row) => new(BufferKind.StagingActivation, slot, row);

    /// <summary>Saved activation <paramref name="row"/> of the set full recomputation refills.</summary>
    public static BufferId RecomputeActivation(int row) => new(BufferKind.RecomputeActivation, -1, row);

    /// <summary>The buffer's name in plans, plots and CSV files (e.g. "weights", "act.3.ln1", "act.slot0.qkv").</summary>
    public string NameIn(ModelConfig cfg)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        string row = this.Row >= 0 ? ActivationInventory.For(cfg)[this.Row].Name : "";
        return Kind switch
        {
            BufferKind.LayerActivation => $"act.{Index.ToString(CultureInfo.InvariantCulture)}.{row}",
            BufferKind.StagingActivation => $"act.slot{Index.ToString(CultureInfo.InvariantCulture)}.{row}",
            BufferKind.RecomputeActivation => $"act.recompute.{row}",
            BufferKind.Weights => "weights",
            BufferKind.Grads => "grads",
            BufferKind.AdamM => "adam_m",
            BufferKind.AdamV => "adam_v",
            BufferKind.RopeCos => "rope_cos",
            BufferKind.RopeSin => "rope_sin",
            BufferKind.Tokens => "tokens",
            BufferKind.Targets => "targets",
            BufferKind.AttentionWorkspace => "attn_work",
            BufferKind.Tmp => "tmp",
            BufferKind.FinalInput => "final_input",
            BufferKind.FinalNorm => "final_norm",
            BufferKind.FinalMean => "final_mean",
            BufferKind.FinalRstd => "final_rstd",
            BufferKind.Logits => "logits",
            BufferKind.Losses => "losses",
            BufferKind.Predictions => "predictions",
            BufferKind.DH => "d_h",
            BufferKind.DA => "d_a",
            BufferKind.DB => "d_b",
            BufferKind.DO => "d_o",
            BufferKind.DQkv => "d_qkv",
            BufferKind.DUp => "d_up",
            BufferKind.DAct => "d_act",
            _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "not a buffer kind"),
        };
    }
}
