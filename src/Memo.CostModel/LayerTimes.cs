namespace Memo.CostModel;

/// <summary>Times of one decoder layer on one device, seconds.</summary>
public sealed record LayerTimes
{
    /// <summary>GEMMs of the forward pass.</summary>
    public double Gemm { get; init; }

    /// <summary>Causal attention forward (after overlap with the context-parallel ring).</summary>
    public double Attention { get; init; }

    /// <summary>Memory-bound elementwise work (norms, activation function, residuals) of the forward pass.</summary>
    public double Elementwise { get; init; }

    /// <summary>Communication of the forward pass that is not overlapped (tensor-parallel collectives, all-to-alls).</summary>
    public double Communication { get; init; }

    /// <summary>Forward pass, everything included.</summary>
    public double Forward { get; init; }

    /// <summary>Backward pass (2x GEMMs, attention backward at 2.5x its forward FLOPs, communication).</summary>
    public double Backward { get; init; }

    /// <summary>Re-running a whole layer (full recomputation): one more forward.</summary>
    public double FullRecompute => Forward;

    /// <summary>Token-wise recomputation of every token: the GEMMs up to the last token-local row, elementwise work and their gathers.</summary>
    public double TokenRecomputeAll { get; init; }

    /// <summary>Exposed + overlapped communication of forward and backward, for reports.</summary>
    public double CommunicationTotal { get; init; }
}
