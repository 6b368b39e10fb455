using Memo.Backends;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Vec = System.Runtime.Intrinsics.Vector512;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Shape of an attention call between a block of queries and a block of keys that lies entirely in
/// their past (no mask). Query t of sequence b, head h, starts at q + (b*QueryLen + t)*QStride + h*HeadDim;
/// key j at k + (b*KeyLen + j)*KvStride + g*HeadDim (v likewise); o and dO use OStride and the query rows;
/// lse at (b*QueryLen + t)*Heads + h.
/// </summary>
public readonly record struct AttentionPastShape(int Batch, long QueryLen, long KeyLen, int Heads, int KvHeads, int HeadDim,
    long QStride, long KvStride, long OStride, float Scale);

/// <summary>
/// Attention of a query block against a key block in its past, the off-diagonal blocks of ring attention
/// (the diagonal blocks are <see cref="Forward"/> and <see cref="Backward"/> of a chunk).
/// </summary>
/// <remarks>
/// Forward, with <c>merge</c>: o and lse already hold the normalized output and log-sum-exp of the
/// same queries over other keys; the online softmax starts from that state (running max lse, running
/// sum 1, accumulator o) and continues over these keys, which is the log-sum-exp merge
/// o' = (e^lse o + sum_j e^s_j v_j) / (e^lse + sum_j e^s_j), lse' = log(e^lse + sum_j e^s_j) done without
/// a second buffer. Without <c>merge</c> it overwrites o and lse with attention over these keys alone.
///
/// Backward: given the final o and lse of the queries (over all keys of the sequence) and dO, adds this
/// block's share to dq, dk and dv: P = exp(s - lse), dS = P (dP - D), D = dO . o, exactly the terms
/// <see cref="Backward"/> sums for these (query, key) pairs. Same tiles, workspace and fixed summation
/// order as the causal kernel (per (b, kv head), query head, query block, key tile, query tile).
/// </remarks>
public static unsafe partial class Attention
{
    private struct PastForwardState
    {
        public AttentionPastShape Shape;
        public float* Q, K, V, O, Lse, Workspace;
        public long SlotFloats, Blocks, Items, Next;
        public bool Merge;
    }

    /// <summary>o, lse of queries over a past key block; with <paramref name="merge"/>, merged into the existing o, lse.</summary>
    public static void ForwardPast(in AttentionPastShape s, float* q, float* k, float* v, float* o, float* lse, bool merge,
        float* workspace, WorkerPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ValidatePast(s);
        if (s.Batch == 0 || s.QueryLen == 0) return;
        if (s.KeyLen == 0)
        {
            if (merge) return;
            throw new MemoException("attention over an empty key block has no output; pass merge = true or at least one key");
        }
        long blocks = (s.QueryLen + BlockRows - 1) / BlockRows;
        var state = new PastForwardState
        {
            Shape = s, Q = q, K = k, V = v, O = o, Lse = lse, Workspace = workspace, Merge = merge,
            SlotFloats = SlotFloats(s.HeadDim), Blocks = blocks, Items = blocks * s.Batch * s.Heads, Next = 0,
        };
        int workers = (int)Math.Min(pool.Threads, state.Items);
        pool.For(workers, &PastForwardWorker, &state);
    }

    /// <summary>Adds (does not overwrite) the block's share to dq, dk, dv; they use the strides of q, k, v.</summary>
    public static void BackwardPast(in AttentionPastShape s, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace, WorkerPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ValidatePast(s);
        if (s.Batch == 0 || s.QueryLen == 0 || s.KeyLen == 0) return;
        var state = new BackwardState
        {
            // The query-side fields of the causal kernel's state, so LoadQueryTile serves both.
            Shape = new AttentionShape(s.Batch, s.QueryLen, s.Heads, s.KvHeads, s.HeadDim, s.QStride, s.KvStride, s.OStride, s.Scale),
            Q = q, K = k, V = v, O = o, Lse = lse, DO = dO, DQ = dq, DK = dk, DV = dv,
            Workspace = workspace, SlotFloats = SlotFloats(s.HeadDim),
            Blocks = (s.QueryLen + BlockRows - 1) / BlockRows,
            Items = (long)s.Batch * s.KvHeads, Next = 0,
        };
        var past = new PastBackwardState { Inner = &state, KeyLen = s.KeyLen };
        int workers = (int)Math.Min(pool.Threads, state.Items);
        pool.For(workers, &PastBackwardWorker, &past);
    }

    private static void ValidatePast(in AttentionPastShape s)
    {
        if (s.QueryLen < 0 || s.KeyLen < 0)
            throw new MemoException($"attention block lengths must not be negative (got {s.QueryLen} queries, {s.KeyLen} keys)");
        Validate(new AttentionShape(s.Batch, s.QueryLen, s.Heads, s.KvHeads, s.HeadDim, s.QStride, s.KvStride, s.OStride, s.Scale));
    }

    private static void PastForwardWorker(int slot, void* state)
    {
        var st = (PastForwardState*)state;
        float* w = st->Workspace + slot * st->SlotFloats;
        long item;
        while ((item = Interlocked.Increment(ref st->Next) - 1) < st->Items) PastForwardBlock(st, item, w);
    }

    /// <summary>One query block of one (b, h) against every key tile of the block, unmasked; workspace as in <see cref="ForwardBlock"/>.</summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PastForwardBlock(PastForwardState* st, long item, float* w)
    {
        const int R = AttentionTiles.Rows, Bc = AttentionTiles.Keys;
        ref readonly AttentionPastShape s = ref st->Shape;
        int heads = s.Heads, dim = s.HeadDim;
        long qLen = s.QueryLen, kLen = s.KeyLen, qStride = s.QStride, kvStride = s.KvStride, oStride = s.OStride;
        long bh = item / st->Blocks;
        long block = st->Blocks - 1 - item % st->Blocks;
        int b = (int)(bh / heads), h = (int)(bh % heads);
        int g = h / (heads / s.KvHeads);
        long blockRow0 = block * Block * R;
        int tiles = (int)Math.Min(Block, (qLen - blockRow0 + R - 1) / R);
        bool merge = st->Merge;

        long perTile = 2L * dim * R + 3 * R;
        float* sT = w + Block * perTile;
        float c = s.Scale * Log2E;
        for (int u = 0; u < tiles; u++)
        {
            float* qT = w + u * perTile;
            float* oT = qT + dim * R;
            float* mx = oT + dim * R;
            long i0 = blockRow0 + u * R;
            int rows = (int)Math.Min(R, qLen - i0);
            long row0 = b * qLen + i0;
            float* qRow = st->Q + row0 * qStride + (long)h * dim;
            for (int i = 0; i < rows; i++, qRow += qStride)
                for (int d = 0; d < dim; d++) qT[d * R + i] = qRow[d] * c;
            for (int i = rows; i < R; i++)
                for (int d = 0; d < dim; d++) qT[d * R + i] = 0;
            if (merge)
            {
                // The earlier keys' state: max = lse (base 2), sum = 1, accumulator = normalized o.
                float* oRow = st->O + row0 * oStride + (long)h * dim;
                float* lseRow = st->Lse + row0 * heads + h;
                for (int i = 0; i < rows; i++, oRow += oStride, lseRow += heads)
                {
                    for (int d = 0; d < dim; d++) oT[d * R + i] = oRow[d];
                    mx[i] = *lseRow * Log2E;
                    mx[R + i] = 1;
                }
                for (int i = rows; i < R; i++)
                {
                    for (int d = 0; d < dim; d++) oT[d * R + i] = 0;
                    mx[i] = float.NegativeInfinity;
                    mx[R + i] = 0;
                }
            }
            else
            {
                for (int i = 0; i < R; i++)
                {
                    mx[i] = float.NegativeInfinity;
                    mx[R + i] = 0;
                }
            }
        }

        float* kBase = st->K + b * kLen * kvStride + (long)g * dim;
        float* vBase = st->V + b * kLen * kvStride + (long)g * dim;
        long keyTiles = (kLen + Bc - 1) / Bc;
        for (long kt = 0; kt < keyTiles; kt++)
        {
            long j0 = kt * Bc;
            int keys = (int)Math.Min(Bc, kLen - j0);
            if (kt + 1 < keyTiles)
            {
                int next = (int)Math.Min(Bc, kLen - j0 - Bc);
                AttentionTiles.Prefetch(kBase + (j0 + Bc) * kvStride, kvStride, next, dim);
                AttentionTiles.Prefetch(vBase + (j0 + Bc) * kvStride, kvStride, next, dim);
            }
            for (int u = 0; u < tiles; u++)
            {
                float* qT = w + u * perTile;
                float* oT = qT + dim * R;
                float* mx = oT + dim * R;
                AttentionTiles.ProductT(sT, keys, kBase + j0 * kvStride, (nint)kvStride, 1, dim, qT, TileInit.Zero, null);
                OnlineSoftmax(sT, keys, mx, mx + R, mx + 2 * R);
                AttentionTiles.ProductT(oT, dim, vBase + j0 * kvStride, 1, (nint)kvStride, keys, sT,
                    kt == 0 && !merge ? TileInit.Zero : TileInit.Scale, mx + 2 * R);
            }
        }

        for (int u = 0; u < tiles; u++)
        {
            float* oT = w + u * perTile + dim * R;
            float* mx = oT + dim * R;
            float* sum = mx + R;
            float* inv = sum + R;
            for (int i = 0; i < R; i += AttentionTiles.Lanes)
                (Vector512<float>.One / Vec.Load(sum + i)).Store(inv + i);
            long i0 = blockRow0 + u * R;
            int rows = (int)Math.Min(R, qLen - i0);
            long row0 = b * qLen + i0;
            float* oRow = st->O + row0 * oStride + (long)h * dim;
            float* lseRow = st->Lse + row0 * heads + h;
            for (int i = 0; i < rows; i++, oRow += oStride, lseRow += heads)
            {
                float f = inv[i];
                for (int d = 0; d < dim; d++) oRow[d] = oT[d * R + i] * f;
                *lseRow = (mx[i] + MathF.Log2(sum[i])) * Ln2;
            }
        }
    }

    private struct PastBackwardState
    {
        public BackwardState* Inner;
        public long KeyLen;
    }

    private static void PastBackwardWorker(int slot, void* state)
    {
        var past = (PastBackwardState*)state;
        var st = past->Inner;
        float* w = st->Workspace + slot * st->SlotFloats;
        long item;
        while ((item = Interlocked.Increment(ref st->Next) - 1) < st->Items)
        {
            int b = (int)(item / st->Shape.KvHeads), g = (int)(item % st->Shape.KvHeads);
            PastBackwardGroup(st, past->KeyLen, b, g, w);
        }
    }

    /// <summary>
    /// Adds to dk, dv of kv head g in sequence b and to dq of its query heads. Sum order as in
    /// <see cref="BackwardGroup"/>; dq of a query tile is summed over the key tiles first and then added once.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PastBackwardGroup(BackwardState* st, long kLen, int b, int g, float* w)
    {
        const int R = AttentionTiles.Rows, Bc = AttentionTiles.Keys;
        ref readonly AttentionShape s = ref st->Shape;
        int dim = s.HeadDim, group = s.Heads / s.KvHeads, dimPad = Padded(dim);
        long qLen = s.SeqLen, qStride = s.QStride, kvStride = s.KvStride;
        float scale = s.Scale, c = s.Scale * Log2E;

        long perTile = BackwardTileFloats(dim);
        float* pT = w + Block * perTile;
        float* dsT = pT + Bc * R;

        long qRow0 = b * qLen, kRow0 = b * kLen;
        float* kBase = st->K + kRow0 * kvStride + (long)g * dim;
        float* vBase = st->V + kRow0 * kvStride + (long)g * dim;
        float* dkBase = st->DK + kRow0 * kvStride + (long)g * dim;
        float* dvBase = st->DV + kRow0 * kvStride + (long)g * dim;
        long keyTiles = (kLen + Bc - 1) / Bc;

        for (int h = g * group; h < (g + 1) * group; h++)
        {
            for (long block = 0; block < st->Blocks; block++)
            {
                long blockRow0 = block * BlockRows;
                int tiles = (int)Math.Min(Block, (qLen - blockRow0 + R - 1) / R);
                for (int u = 0; u < tiles; u++)
                {
                    long i0 = blockRow0 + u * R;
                    LoadQueryTile(st, qRow0 + i0, h, (int)Math.Min(R, qLen - i0), c, w + u * perTile, dim, dimPad);
                }

                for (long kt = 0; kt < keyTiles; kt++)
                {
                    long j0 = kt * Bc;
                    int keys = (int)Math.Min(Bc, kLen - j0);
                    float* kTile = kBase + j0 * kvStride;
                    if (kt + 1 < keyTiles)
                    {
                        int next = (int)Math.Min(Bc, kLen - j0 - Bc);
                        long nextRow = (j0 + Bc) * kvStride;
                        AttentionTiles.Prefetch(kBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(vBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(dkBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(dvBase + nextRow, kvStride, next, dim);
                    }
                    for (int u = 0; u < tiles; u++)
                    {
                        long i0 = blockRow0 + u * R;
                        int rows = (int)Math.Min(R, qLen - i0);
                        float* qT = w + u * perTile;
                        float* dOT = qT + dim * R;
                        float* dqT = dOT + dim * R;
                        float* qRows = dqT + dim * R;
                        float* dORows = qRows + R * dimPad;
                        float* lse2 = dORows + R * dimPad;
                        float* delta = lse2 + R;
                        AttentionTiles.ProductT(pT, keys, kTile, (nint)kvStride, 1, dim, qT, TileInit.Zero, null);
                        AttentionTiles.ProductT(dsT, keys, vBase + j0 * kvStride, (nint)kvStride, 1, dim, dOT, TileInit.Zero, null);
                        ProbabilitiesAndScoreGrad(pT, dsT, keys, lse2, delta, scale);
                        AttentionTiles.ProductRows(dvBase + j0 * kvStride, (nint)kvStride, keys, dim, pT, rows, dORows, dimPad);
                        AttentionTiles.ProductRows(dkBase + j0 * kvStride, (nint)kvStride, keys, dim, dsT, rows, qRows, dimPad);
                        AttentionTiles.ProductT(dqT, dim, kTile, 1, (nint)kvStride, keys, dsT,
                            kt == 0 ? TileInit.Zero : TileInit.Accumulate, null);
                    }
                }

                for (int u = 0; u < tiles; u++)
                {
                    long i0 = blockRow0 + u * R;
                    int rows = (int)Math.Min(R, qLen - i0);
                    float* dqT = w + u * perTile + 2 * dim * R;
                    float* dqRow = st->DQ + (qRow0 + i0) * qStride + (long)h * dim;
                    for (int i = 0; i < rows; i++, dqRow += qStride)
                        for (int d = 0; d < dim; d++) dqRow[d] += dqT[d * R + i];
                }
            }
        }
    }
}
