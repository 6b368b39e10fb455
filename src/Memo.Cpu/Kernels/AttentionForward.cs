using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Memo.Backends;
using Vec = System.Runtime.Intrinsics.Vector512;

namespace Memo.Cpu.Kernels;

/// <summary>Forward pass of <see cref="Attention"/>: online softmax over key tiles, per (b, h, block of query tiles).</summary>
public static unsafe partial class Attention
{
    private struct ForwardState
    {
        public AttentionShape Shape;
        public float* Q, K, V, O, Lse, Workspace;
        public long SlotFloats, Blocks, Items, Next;
    }

    private static void ForwardWorker(int slot, void* state)
    {
        var st = (ForwardState*)state;
        float* w = st->Workspace + slot * st->SlotFloats;
        long item;
        while ((item = Interlocked.Increment(ref st->Next) - 1) < st->Items) ForwardBlock(st, item, w);
    }

    /// <summary>
    /// One item: the query block (<see cref="Block"/> tiles of 64 queries) <c>item</c> of one (b, h).
    /// Item order: (b, h) major, so workers share one head's keys and values in cache; within a head
    /// the costliest (last) blocks first, so the schedule ends with short items. Each key tile is
    /// loaded once for all tiles of the block. The result of an item does not depend on which worker runs it.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock(ForwardState* st, long item, float* w)
    {
        const int R = AttentionTiles.Rows, Bc = AttentionTiles.Keys;
        ref readonly AttentionShape s = ref st->Shape;
        int heads = s.Heads, dim = s.HeadDim;
        long seqLen = s.SeqLen, qStride = s.QStride, kvStride = s.KvStride, oStride = s.OStride;
        long bh = item / st->Blocks;
        long block = st->Blocks - 1 - item % st->Blocks;
        int b = (int)(bh / heads), h = (int)(bh % heads);
        int g = h / (heads / s.KvHeads);
        long blockRow0 = block * Block * R;
        int tiles = (int)Math.Min(Block, (seqLen - blockRow0 + R - 1) / R);

        // Per query tile of the block: qT (D, 64) q scaled by Scale*log2(e), transposed; oT (D, 64)
        // unnormalized output, transposed; running max (base 2), running sum, and this key tile's
        // rescale, 64 each. Then one shared (Bc, 64) tile of scores / probabilities.
        long perTile = 2L * dim * R + 3 * R;
        float* sT = w + Block * perTile;
        float c = s.Scale * Log2E;
        for (int u = 0; u < tiles; u++)
        {
            float* qT = w + u * perTile;
            float* mx = qT + 2 * dim * R;
            long i0 = blockRow0 + u * R;
            int rows = (int)Math.Min(R, seqLen - i0);
            float* qRow = st->Q + (b * seqLen + i0) * qStride + (long)h * dim;
            for (int i = 0; i < rows; i++, qRow += qStride)
                for (int d = 0; d < dim; d++) qT[d * R + i] = qRow[d] * c;
            for (int i = rows; i < R; i++)
                for (int d = 0; d < dim; d++) qT[d * R + i] = 0;
            for (int i = 0; i < R; i++)
            {
                mx[i] = float.NegativeInfinity;
                mx[R + i] = 0;
            }
        }

        float* kBase = st->K + b * seqLen * kvStride + (long)g * dim;
        float* vBase = st->V + b * seqLen * kvStride + (long)g * dim;
        long blockLast = Math.Min(seqLen, blockRow0 + Block * R) - 1;
        long keyTiles = blockLast / Bc + 1;
        for (long kt = 0; kt < keyTiles; kt++)
        {
            long j0 = kt * Bc;
            if (kt + 1 < keyTiles)
            {
                int next = (int)Math.Min(Bc, blockLast + 1 - j0 - Bc);
                AttentionTiles.Prefetch(kBase + (j0 + Bc) * kvStride, kvStride, next, dim);
                AttentionTiles.Prefetch(vBase + (j0 + Bc) * kvStride, kvStride, next, dim);
            }
            for (int u = 0; u < tiles; u++)
            {
                long i0 = blockRow0 + u * R;
                long last = Math.Min(seqLen, i0 + R) - 1;
                if (j0 > last) continue; // keys after the tile's last query: fully masked
                int keys = (int)Math.Min(Bc, last + 1 - j0);
                float* qT = w + u * perTile;
                float* oT = qT + dim * R;
                float* mx = oT + dim * R;
                AttentionTiles.ProductT(sT, keys, kBase + j0 * kvStride, (nint)kvStride, 1, dim, qT, TileInit.Zero, null);
                if (j0 + keys - 1 > i0) AttentionTiles.MaskCausal(sT, keys, j0 - i0);
                OnlineSoftmax(sT, keys, mx, mx + R, mx + 2 * R);
                AttentionTiles.ProductT(oT, dim, vBase + j0 * kvStride, 1, (nint)kvStride, keys, sT,
                    kt == 0 ? TileInit.Zero : TileInit.Scale, mx + 2 * R);
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
            int rows = (int)Math.Min(R, seqLen - i0);
            long row0 = b * seqLen + i0;
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

    /// <summary>
    /// One key tile of the online softmax: new max m' = max(m, max_j s_j), alpha = 2^(m - m'),
    /// p_j = 2^(s_j - m') in place, l' = alpha*l + sum_j p_j (summed over j in order).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OnlineSoftmax(float* sT, int keys, float* mx, float* sum, float* alpha)
    {
        const int R = AttentionTiles.Rows;
        var m0 = Vec.Load(mx);
        var m1 = Vec.Load(mx + 16);
        var m2 = Vec.Load(mx + 32);
        var m3 = Vec.Load(mx + 48);
        var n0 = m0;
        var n1 = m1;
        var n2 = m2;
        var n3 = m3;
        float* row = sT;
        for (int j = 0; j < keys; j++, row += R)
        {
            n0 = Vec.Max(n0, Vec.Load(row));
            n1 = Vec.Max(n1, Vec.Load(row + 16));
            n2 = Vec.Max(n2, Vec.Load(row + 32));
            n3 = Vec.Max(n3, Vec.Load(row + 48));
        }
        var a0 = AttentionTiles.Exp2(m0 - n0);
        var a1 = AttentionTiles.Exp2(m1 - n1);
        var a2 = AttentionTiles.Exp2(m2 - n2);
        var a3 = AttentionTiles.Exp2(m3 - n3);
        Vector512<float> l0 = Vector512<float>.Zero, l1 = l0, l2 = l0, l3 = l0;
        row = sT;
        for (int j = 0; j < keys; j++, row += R)
        {
            var p0 = AttentionTiles.Exp2(Vec.Load(row) - n0);
            var p1 = AttentionTiles.Exp2(Vec.Load(row + 16) - n1);
            var p2 = AttentionTiles.Exp2(Vec.Load(row + 32) - n2);
            var p3 = AttentionTiles.Exp2(Vec.Load(row + 48) - n3);
            p0.Store(row);
            p1.Store(row + 16);
            p2.Store(row + 32);
            p3.Store(row + 48);
            l0 += p0;
            l1 += p1;
            l2 += p2;
            l3 += p3;
        }
        Vec.FusedMultiplyAdd(Vec.Load(sum), a0, l0).Store(sum);
        Vec.FusedMultiplyAdd(Vec.Load(sum + 16), a1, l1).Store(sum + 16);
        Vec.FusedMultiplyAdd(Vec.Load(sum + 32), a2, l2).Store(sum + 32);
        Vec.FusedMultiplyAdd(Vec.Load(sum + 48), a3, l3).Store(sum + 48);
        n0.Store(mx);
        n1.Store(mx + 16);
        n2.Store(mx + 32);
        n3.Store(mx + 48);
        a0.Store(alpha);
        a1.Store(alpha + 16);
        a2.Store(alpha + 32);
        a3.Store(alpha + 48);
    }
}
