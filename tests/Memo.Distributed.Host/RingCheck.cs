using Memo.Backends;
using System.Runtime.InteropServices;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Distributed.Host;

/// <summary>Largest relative error (max |ring - reference| / max |reference|) per tensor, and whether two runs gave the same bits.</summary>
public sealed record RingCheckResult(double ErrO, double ErrLse, double ErrDq, double ErrDk, double ErrDv, bool SameBits, RingStats Stats, long CommSendBytes)
{
    public double MaxErr => new[] { ErrO, ErrLse, ErrDq, ErrDk, ErrDv }.Max();

    public override string ToString() =>
        $"o {ErrO:E2} lse {ErrLse:E2} dq {ErrDq:E2} dk {ErrDk:E2} dv {ErrDv:E2} same-bits {SameBits} sent {CommSendBytes} B";
}

/// <summary>
/// Ring attention on one rank against the single-process causal kernels on the whole sequence: every
/// rank builds the same random q, k, v, dO for all T tokens (fused rows [q | k | v] as in the model),
/// runs <see cref="Attention.Forward"/>/<see cref="Attention.Backward"/> on all of it, takes its zig-zag
/// rows, runs <see cref="RingAttention"/> twice, and compares.
/// </summary>
public static unsafe class RingCheck
{
    public static RingCheckResult Run(ICommunicator ring, int batch, long seqLen, int heads, int kvHeads, int headDim, int threads, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(ring);
        var zz = ZigZag.Create(seqLen, ring.Size);
        long qStride = (long)(heads + 2 * kvHeads) * headDim, oStride = (long)heads * headDim;
        long kOff = (long)heads * headDim, vOff = kOff + (long)kvHeads * headDim;
        float scale = 1 / MathF.Sqrt(headDim);
        long n = batch * seqLen;
        var rng = new Random(seed);
        var qkv = Random(rng, n * qStride);
        var dO = Random(rng, n * oStride);
        var o = new float[n * oStride];
        var lse = new float[n * heads];
        var dqkv = new float[n * qStride];
        using var pool = new WorkerPool(threads);
        var work = new float[Attention.WorkspaceFloats(threads, headDim)];
        var full = new AttentionShape(batch, seqLen, heads, kvHeads, headDim, qStride, qStride, oStride, scale);
        fixed (float* x = qkv, po = o, pl = lse, pd = dO, pg = dqkv, pw = work)
        {
            Attention.Forward(full, x, x + kOff, x + vOff, po, pl, pw, pool);
            Attention.Backward(full, x, x + kOff, x + vOff, po, pl, pd, pg, pg + kOff, pg + vOff, pw, pool);
        }

        // This rank's rows, zig-zag.
        long local = batch * zz.LocalLen;
        var rows = new long[local];
        for (int b = 0; b < batch; b++)
            for (long t = 0; t < zz.LocalLen; t++) rows[b * zz.LocalLen + t] = b * seqLen + zz.GlobalPosition(ring.Rank, t);
        var lq = Gather(qkv, rows, qStride);
        var ldO = Gather(dO, rows, oStride);

        var shape = new RingShape(batch, zz.Chunk, heads, kvHeads, headDim, scale);
        var attention = new RingAttention(ring, shape, pool);
        var ws = new float[RingAttention.WorkspaceFloats(shape, threads)];
        float[] RunOnce(out float[] lo, out float[] llse)
        {
            lo = new float[local * oStride];
            llse = new float[local * heads];
            var lg = new float[local * qStride];
            Array.Fill(ws, float.NaN); // scratch must be written before it is read
            Array.Fill(lg, float.NaN);
            fixed (float* x = lq, po = lo, pl = llse, pd = ldO, pg = lg, pw = ws)
            {
                attention.Forward(x, qStride, x + kOff, x + vOff, qStride, po, oStride, pl, pw);
                attention.Backward(x, qStride, x + kOff, x + vOff, qStride, po, oStride, pl, pd, pg, pg + kOff, pg + vOff, pw);
            }
            return lg;
        }
        long sentBefore = ring.Counters.SendBytes;
        var g1 = RunOnce(out var o1, out var lse1);
        long sent = ring.Counters.SendBytes - sentBefore;
        var stats = attention.Stats;
        var g2 = RunOnce(out var o2, out var lse2);
        bool same = Same(g1, g2) && Same(o1, o2) && Same(lse1, lse2);

        return new RingCheckResult(
            Err(o1, Gather(o, rows, oStride), oStride, 0, oStride),
            Err(lse1, Gather(lse, rows, heads), heads, 0, heads),
            Err(g1, Gather(dqkv, rows, qStride), qStride, 0, kOff),
            Err(g1, Gather(dqkv, rows, qStride), qStride, kOff, vOff),
            Err(g1, Gather(dqkv, rows, qStride), qStride, vOff, qStride),
            same, stats, sent);
    }

    private static float[] Random(Random rng, long n)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    private static float[] Gather(float[] src, long[] rows, long width)
    {
        var dst = new float[rows.LongLength * width];
        for (long i = 0; i < rows.LongLength; i++) Array.Copy(src, rows[i] * width, dst, i * width, width);
        return dst;
    }

    /// <summary>Relative error over columns [lo, hi) of rows of <paramref name="width"/>.</summary>
    private static double Err(float[] got, float[] want, long width, long lo, long hi)
    {
        double maxErr = 0, maxRef = 0;
        for (long i = 0; i < want.LongLength; i++)
        {
            long col = i % width;
            if (col < lo || col >= hi) continue;
            maxErr = Math.Max(maxErr, Math.Abs((double)got[i] - want[i]));
            maxRef = Math.Max(maxRef, Math.Abs(want[i]));
        }
        return maxRef == 0 ? maxErr : maxErr / maxRef;
    }

    private static bool Same(float[] a, float[] b) => MemoryMarshal.AsBytes(a.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(b.AsSpan()));
}
