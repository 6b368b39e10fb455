namespace Memo.CostModel;

/// <summary>
/// Bytes per element of each kind of tensor a training step holds. Activations follow the inventory:
/// rows marked <see cref="ActivationSpec.AlwaysF32"/> (norm statistics, attention log-sum-exp) take
/// <see cref="StatBytes"/> whatever the activation dtype.
/// </summary>
/// <param name="Name">Name printed in reports.</param>
/// <param name="ActivationBytes">Activations and their gradients (bf16 on GPUs, fp32 on the CPU backend).</param>
/// <param name="ParameterBytes">The working copy of the weights used by forward and backward.</param>
/// <param name="GradientBytes">Weight gradients as accumulated (Megatron keeps fp32 "main grads" under bf16).</param>
/// <param name="MasterBytes">fp32 master weights kept by the optimizer under mixed precision (0 in fp32 training).</param>
/// <param name="OptimizerBytes">Adam's two moments.</param>
public sealed record Precision(string Name, int ActivationBytes, int ParameterBytes, int GradientBytes, int MasterBytes, int OptimizerBytes)
{
    /// <summary>Norm statistics and log-sum-exp stay fp32.</summary>
    public const int StatBytes = 4;

    /// <summary>bf16 activations and weights, fp32 main gradients, fp32 master weights and Adam moments: 18 bytes per parameter.</summary>
    public static readonly Precision Bf16Mixed = new("bf16-mixed", 2, 2, 4, 4, 8);

    /// <summary>Everything fp32 (the CPU backend): 16 bytes per parameter.</summary>
    public static readonly Precision Fp32 = new("fp32", 4, 4, 4, 0, 8);

    /// <summary>Weights + gradients + master + Adam moments, per parameter, before any sharding.</summary>
    public int BytesPerParameter => ParameterBytes + GradientBytes + MasterBytes + OptimizerBytes;

    /// <summary>Bytes of one element of <paramref name="row"/>.</summary>
    public int BytesOf(ActivationSpec row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return row.AlwaysF32 ? StatBytes : ActivationBytes;
    }

    public static Precision Parse(string name) => name switch
    {
        "bf16-mixed" or "bf16" => Bf16Mixed,
        "fp32" => Fp32,
        _ => throw new MemoException($"precision '{name}' is not known; use bf16-mixed or fp32"),
    };
}
