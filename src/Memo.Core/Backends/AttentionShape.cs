namespace Memo.Backends;

/// <summary>
/// Shape and strides of one causal attention call. Token t of sequence b, head h, starts at
/// q + (b*SeqLen + t)*QStride + h*HeadDim (k and v: KvStride, kv head h / (Heads/KvHeads));
/// o and dO at (b*SeqLen + t)*OStride + h*HeadDim; lse at (b*SeqLen + t)*Heads + h.
/// </summary>
public readonly record struct AttentionShape(int Batch, long SeqLen, int Heads, int KvHeads, int HeadDim,
    long QStride, long KvStride, long OStride, float Scale);
