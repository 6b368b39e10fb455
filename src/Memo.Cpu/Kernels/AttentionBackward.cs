using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Memo.Backends;
using Vec = System.Runtime.Intrinsics.Vector512;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Backward pass of <see cref="Attention"/>, per (b, kv head): probabilities recomputed from q, k and
/// the saved log-sum-exp, one (query tile, key tile) pair at a time.
/// </summary>
public static unsafe partial class Attention
{
    private struct BackwardState
    {
        public AttentionShape Shape;
        public float* Q, K, V, O, Lse, DO, DQ, DK, DV, Workspace;
        public long SlotFloats, Blocks, Items, Next;
    }

    private static void BackwardWorker(int slot, void* state)
    {
        var st = (BackwardState*)state;
        float* w = st->Workspace + slot * st->SlotFloats;
        long item;
        while ((item = Interlocked.Increment(ref st->Next) - 1) < st->Items)
        {
            int b = (int)(item / st->Shape.KvHeads), g = (int)(item % st->Shape.KvHeads);
            BackwardGroup(st, b, g, w);
        }
    }

    /// <summary>
    /// dk, dv of kv head g in sequence b, and dq of its query heads. Sum order: query head, query block,
    /// key tile, query tile of the block, each increasing; within a pair, over queries (dk, dv) or keys
    /// (dq) in increasing order. Each key tile is loaded once for all query tiles of a block.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardGroup(BackwardState* st, int b, int g, float* w)
    {
        const int R = AttentionTiles.Rows, Bc = AttentionTiles.Keys;
        ref readonly AttentionShape s = ref st->Shape;
        int heads = s.Heads, dim = s.HeadDim, group = s.Heads / s.KvHeads, dimPad = Padded(dim);
        long seqLen = s.SeqLen, qStride = s.QStride, kvStride = s.KvStride;
        float scale = s.Scale, c = s.Scale * Log2E;

        // Per query tile of a block (BackwardTileFloats): qT (D, 64) q * Scale*log2(e), transposed;
        // dOT (D, 64) dO, transposed; dqT (D, 64) dq of the tile, transposed; q and dO rows (64, Dpad),
        // zero padded; lse2 (64) lse * log2(e), +inf past the sequence; delta (64) D_i = dO_i . o_i.
        // Then, shared: pT (Bc, 64) probabilities of one key tile; dsT (Bc, 64) dP, then dS * Scale.
        long perTile = BackwardTileFloats(dim);
        float* pT = w + Block * perTile;
        float* dsT = pT + Bc * R;

        long seqRow0 = b * seqLen;
        float* kBase = st->K + seqRow0 * kvStride + (long)g * dim;
        float* vBase = st->V + seqRow0 * kvStride + (long)g * dim;
        float* dkBase = st->DK + seqRow0 * kvStride + (long)g * dim;
        float* dvBase = st->DV + seqRow0 * kvStride + (long)g * dim;
        for (long t = 0; t < seqLen; t++)
        {
            NativeMemory.Clear(dkBase + t * kvStride, (nuint)dim * sizeof(float));
            NativeMemory.Clear(dvBase + t * kvStride, (nuint)dim * sizeof(float));
        }

        for (int h = g * group; h < (g + 1) * group; h++)
        {
            for (long block = 0; block < st->Blocks; block++)
            {
                long blockRow0 = block * BlockRows;
                int tiles = (int)Math.Min(Block, (seqLen - blockRow0 + R - 1) / R);
                for (int u = 0; u < tiles; u++)
                {
                    long i0 = blockRow0 + u * R;
                    float* qT = w + u * perTile;
                    LoadQueryTile(st, seqRow0 + i0, h, (int)Math.Min(R, seqLen - i0), c, qT, dim, dimPad);
                }

                long blockLast = Math.Min(seqLen, blockRow0 + BlockRows) - 1;
                long keyTiles = blockLast / Bc + 1;
                for (long kt = 0; kt < keyTiles; kt++)
                {
                    long j0 = kt * Bc;
                    float* kTile = kBase + j0 * kvStride;
                    if (kt + 1 < keyTiles)
                    {
                        int next = (int)Math.Min(Bc, blockLast + 1 - j0 - Bc);
                        long nextRow = (j0 + Bc) * kvStride;
                        AttentionTiles.Prefetch(kBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(vBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(dkBase + nextRow, kvStride, next, dim);
                        AttentionTiles.Prefetch(dvBase + nextRow, kvStride, next, dim);
                    }
                    for (int u = 0; u < tiles; u++)
                    {
                        long i0 = blockRow0 + u * R;
                        long last = Math.Min(seqLen, i0 + R) - 1;
                        if (j0 > last) continue; // keys after the tile's last query: fully masked
                        int keys = (int)Math.Min(Bc, last + 1 - j0);
                        int rows = (int)(last + 1 - i0);
                        float* qT = w + u * perTile;
                        float* dOT = qT + dim * R;
                        float* dqT = dOT + dim * R;
                        float* qRows = dqT + dim * R;
                        float* dORows = qRows + R * dimPad;
                        float* lse2 = dORows + R * dimPad;
                        float* delta = lse2 + R;
                        AttentionTiles.ProductT(pT, keys, kTile, (nint)kvStride, 1, dim, qT, TileInit.Zero, null);
                        if (j0 + keys - 1 > i0) AttentionTiles.MaskCausal(pT, keys, j0 - i0);
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
                    int rows = (int)Math.Min(R, seqLen - i0);
                    float* dqT = w + u * perTile + 2 * dim * R;
                    float* dqRow = st->DQ + (seqRow0 + i0) * qStride + (long)h * dim;
                    for (int i = 0; i < rows; i++, dqRow += qStride)
                        for (int d = 0; d < dim; d++) dqRow[d] = dqT[d * R + i];
                }
            }
        }
    }

    /// <summary>Copies one query tile's q, dO (transposed and as rows), lse and D = rowsum(dO * o) into its workspace part at <paramref name="qT"/>.</summary>
    private static void LoadQueryTile(BackwardState* st, long row0, int h, int rows, float c, float* qT, int dim, int dimPad)
    {
        const int R = AttentionTiles.Rows;
        ref readonly AttentionShape s = ref st->Shape;
        float* dOT = qT + dim * R;
        float* qRows = dOT + 2 * dim * R;
        float* dORows = qRows + R * dimPad;
        float* lse2 = dORows + R * dimPad;
        float* delta = lse2 + R;
        float* qRow = st->Q + row0 * s.QStride + (long)h * dim;
        float* oRow = st->O + row0 * s.OStride + (long)h * dim;
        float* dORow = st->DO + row0 * s.OStride + (long)h * dim;
        float* lseRow = st->Lse + row0 * s.Heads + h;
        for (int i = 0; i < R; i++)
        {
            float* qr = qRows + i * dimPad;
            float* dr = dORows + i * dimPad;
            if (i < rows)
            {
                float dot = 0;
                for (int d = 0; d < dim; d++)
                {
                    float qv = qRow[d], gv = dORow[d];
                    qr[d] = qv;
                    dr[d] = gv;
                    qT[d * R + i] = qv * c;
                    dOT[d * R + i] = gv;
                    dot += gv * oRow[d];
                }
                for (int d = dim; d < dimPad; d++) qr[d] = dr[d] = 0;
                delta[i] = dot;
                lse2[i] = *lseRow * Log2E;
                qRow += s.QStride;
                oRow += s.OStride;
                dORow += s.OStride;
                lseRow += s.Heads;
            }
            else
            {
                for (int d = 0; d < dimPad; d++) qr[d] = dr[d] = 0;
                for (int d = 0; d < dim; d++) qT[d * R + i] = dOT[d * R + i] = 0;
                delta[i] = 0;
                lse2[i] = float.PositiveInfinity;
            }
        }
    }

    /// <summary>P = 2^(s2 - lse2) in place of the scores; dS = P * (dP - D) * Scale in place of dP.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ProbabilitiesAndScoreGrad(float* pT, float* dsT, int keys, float* lse2, float* delta, float scale)
    {
        const int R = AttentionTiles.Rows;
        var l0 = Vec.Load(lse2);
        var l1 = Vec.Load(lse2 + 16);
        var l2 = Vec.Load(lse2 + 32);
        var l3 = Vec.Load(lse2 + 48);
        var d0 = Vec.Load(delta);
        var d1 = Vec.Load(delta + 16);
        var d2 = Vec.Load(delta + 32);
        var d3 = Vec.Load(delta + 48);
        var sc = Vec.Create(scale);
        for (int j = 0; j < keys; j++)
        {
            float* p = pT + j * R;
            float* ds = dsT + j * R;
            Step(p, ds, l0, d0, sc);
            Step(p + 16, ds + 16, l1, d1, sc);
            Step(p + 32, ds + 32, l2, d2, sc);
            Step(p + 48, ds + 48, l3, d3, sc);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Step(float* p, float* ds, Vector512<float> l, Vector512<float> delta, Vector512<float> sc)
        {
            var pv = AttentionTiles.Exp2(Vec.Load(p) - l);
            pv.Store(p);
            (pv * (Vec.Load(ds) - delta) * sc).Store(ds);
        }
    }
}
