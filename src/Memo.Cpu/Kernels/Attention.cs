using Memo.Backends;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Memory-linear (tiled, FlashAttention-style) causal attention. Forward keeps only the output and the
/// per-row log-sum-exp; backward recomputes probabilities tile by tile. The SeqLen x SeqLen matrix
/// never exists. All scratch comes from the caller's workspace (<see cref="WorkspaceFloats"/>).
/// </summary>
/// <remarks>
/// Reference semantics (what the tests compare with, in double): for batch b, query head h, kv head
/// g = h / (Heads/KvHeads) (Hugging Face repeat_kv) and query t, s_j = Scale * q_t . k_j for j &lt;= t,
/// p = softmax(s), o_t = sum_j p_j v_j, lse_t = log sum_j exp(s_j) (natural log).
///
/// Forward: one work item per (b, h, block of two 64-query tiles), run over key tiles in increasing
/// order with the online softmax (running max and sum per query), in base 2: q is prescaled by
/// Scale*log2(e) so p = 2^(s2 - m2). Key tiles after the last query of a tile are skipped, the
/// diagonal tile is masked.
///
/// Backward (FlashAttention-2): one work item per (b, kv head g). It zeroes dk and dv of g, then runs
/// over g's query heads, their query blocks, key tiles and the block's query tiles in increasing order, recomputing
/// P = 2^(s2 - lse2) and dS = P * (dP - D) with D_t = dO_t . o_t, accumulating dq of the query tile in
/// the workspace and adding each tile's dk and dv contribution to the outputs. The order of every sum
/// is fixed by the item, so results are bit-identical for any thread count.
///
/// Workspace: <see cref="WorkspaceFloats"/>(threads, HeadDim) floats with threads &gt;= pool.Threads,
/// one slot per worker; independent of SeqLen.
/// </remarks>
public static unsafe partial class Attention
{
    private const float Log2E = 1.44269504088896340736f;
    private const float Ln2 = 0.693147180559945309417f;

    /// <summary>
    /// Query tiles processed together against each key tile: keys and values are read from memory
    /// once per block instead of once per tile, halving that traffic at long sequence.
    /// </summary>
    private const int Block = 2;

    private const int BlockRows = Block * AttentionTiles.Rows;

    /// <summary>Floats of workspace that <see cref="Forward"/> and <see cref="Backward"/> need for a pool of <paramref name="threads"/>.</summary>
    public static long WorkspaceFloats(int threads, int headDim)
    {
        if (threads < 1) throw new MemoException($"attention workspace needs at least one thread (got {threads})");
        if (headDim < 1) throw new MemoException($"attention head dimension must be positive (got {headDim})");
        return threads * SlotFloats(headDim);
    }

    public static void Forward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse,
        float* workspace, WorkerPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        Validate(s);
        if (s.Batch == 0 || s.SeqLen == 0) return;
        long blocks = (s.SeqLen + BlockRows - 1) / BlockRows;
        var state = new ForwardState
        {
            Shape = s, Q = q, K = k, V = v, O = o, Lse = lse, Workspace = workspace,
            SlotFloats = SlotFloats(s.HeadDim), Blocks = blocks,
            Items = blocks * s.Batch * s.Heads, Next = 0,
        };
        int workers = (int)Math.Min(pool.Threads, state.Items);
        pool.For(workers, &ForwardWorker, &state);
    }

    /// <summary>Writes (overwrites) dq, dk, dv; they use the strides of q, k, v.</summary>
    public static void Backward(in AttentionShape s, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace, WorkerPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        Validate(s);
        if (s.Batch == 0 || s.SeqLen == 0) return;
        var state = new BackwardState
        {
            Shape = s, Q = q, K = k, V = v, O = o, Lse = lse, DO = dO, DQ = dq, DK = dk, DV = dv,
            Workspace = workspace, SlotFloats = SlotFloats(s.HeadDim),
            Blocks = (s.SeqLen + BlockRows - 1) / BlockRows,
            Items = (long)s.Batch * s.KvHeads, Next = 0,
        };
        int workers = (int)Math.Min(pool.Threads, state.Items);
        pool.For(workers, &BackwardWorker, &state);
    }

    /// <summary>Head dimension rounded up to whole vectors (row copies in the workspace).</summary>
    private static int Padded(int headDim) => (headDim + AttentionTiles.Lanes - 1) / AttentionTiles.Lanes * AttentionTiles.Lanes;

    /// <summary>
    /// One worker's scratch, the larger of forward (per query tile of a block: qT, oT: D x 64;
    /// max, sum, alpha: 64; plus one 64 x 64 score tile) and backward (per query tile: qT, dOT, dqT:
    /// D x 64; q, dO rows: 64 x Dpad; lse2, D: 64; plus P and dS tiles: 64 x 64).
    /// Every part is a multiple of 16 floats, so 64-byte alignment of the workspace carries over.
    /// </summary>
    private static long SlotFloats(int headDim)
    {
        const long R = AttentionTiles.Rows;
        long forward = Block * (2 * headDim * R + 3 * R) + AttentionTiles.Keys * R;
        long backward = Block * BackwardTileFloats(headDim) + 2 * AttentionTiles.Keys * R;
        return Math.Max(forward, backward);
    }

    private static long BackwardTileFloats(int headDim) =>
        3L * headDim * AttentionTiles.Rows + 2L * AttentionTiles.Rows * Padded(headDim) + 2 * AttentionTiles.Rows;

    private static void Validate(in AttentionShape s)
    {
        if (s.Batch < 0 || s.SeqLen < 0)
            throw new MemoException($"attention batch and sequence length must not be negative (got {s.Batch} x {s.SeqLen})");
        if (s.Heads < 1 || s.KvHeads < 1 || s.Heads % s.KvHeads != 0)
            throw new MemoException($"attention heads ({s.Heads}) must be a positive multiple of kv heads ({s.KvHeads})");
        if (s.HeadDim < 1)
            throw new MemoException($"attention head dimension must be positive (got {s.HeadDim})");
        if (s.QStride < (long)s.Heads * s.HeadDim || s.OStride < (long)s.Heads * s.HeadDim || s.KvStride < (long)s.KvHeads * s.HeadDim)
            throw new MemoException($"attention row strides (q {s.QStride}, kv {s.KvStride}, o {s.OStride}) are smaller than the heads they hold; pass the row length in floats");
        if (!float.IsFinite(s.Scale))
            throw new MemoException($"attention scale must be finite (got {s.Scale})");
    }
}
