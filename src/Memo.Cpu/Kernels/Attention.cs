namespace Memo.Cpu.Kernels;

/// <summary>
/// Shape and strides of one causal attention call. Token t of sequence b, head h, starts at
/// q + (b*SeqLen + t)*QStride + h*HeadDim (k and v: KvStride, kv head h / (Heads/KvHeads));
/// o and dO at (b*SeqLen + t)*OStride + h*HeadDim; lse at (b*SeqLen + t)*Heads + h.
/// </summary>
public readonly record struct AttentionShape(int Batch, long SeqLen, int Heads, int KvHeads, int HeadDim,
    long QStride, long KvStride, long OStride, float Scale);

/// <summary>
/// Memory-linear (tiled, FlashAttention-style) causal attention. Forward keeps only the output and the
/// per-row log-sum-exp; backward recomputes probabilities tile by tile. The SeqLen x SeqLen matrix
/// never exists. All scratch comes from the caller's workspace (<see cref="WorkspaceFloats"/>).
/// </summary>
public static unsafe class Attention
{
    public static long WorkspaceFloats(int threads, int headDim) => throw new NotImplementedException();

    public static void Forward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse,
        float* workspace, WorkerPool pool) => throw new NotImplementedException();

    /// <summary>Writes (overwrites) dq, dk, dv; they use the strides of q, k, v.</summary>
    public static void Backward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace, WorkerPool pool) => throw new NotImplementedException();
}
