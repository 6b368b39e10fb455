using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Rotary position embedding in the Hugging Face Llama (rotate-half) convention, applied in place
/// to the first <c>heads</c> heads of each row: for i in [0, D/2), with c = cos(pos*f_i), s = sin(pos*f_i),
/// f_i = theta^(-2i/D): x'[i] = x[i]*c - x[i+D/2]*s and x'[i+D/2] = x[i+D/2]*c + x[i]*s.
/// Row r of the call has position (rowOffset + r) % seqLen. Backward applies the inverse rotation.
/// Every element depends only on its own pair and position, so any subset of rows (with rowOffset
/// set to match) gives the same bits as the full call. Reference: HF <c>apply_rotary_pos_emb</c>.
/// </summary>
public static unsafe class Rope
{
    private struct Args
    {
        public float* X;
        public float* Cos;
        public float* Sin;
        public long RowStride;
        public long RowOffset;
        public long SeqLen;
        public int Heads;
        public int HeadDim;
        public float SinSign;
    }

    /// <summary>cos and sin tables, each [maxPos, D/2], computed in double and rounded to float.</summary>
    public static (float[] Cos, float[] Sin) Table(long maxPos, int headDim, double theta)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxPos);
        CheckHeadDim(headDim);
        int half = headDim / 2;
        long count = maxPos * half;
        if (count > Array.MaxLength)
        {
            throw new MemoException($"the rotary table for {maxPos} positions x {half} frequencies is too large; use a shorter sequence length");
        }
        var cos = new float[count];
        var sin = new float[count];
        var freq = new double[half];
        for (int i = 0; i < half; i++) freq[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        for (long pos = 0; pos < maxPos; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = pos * freq[i];
                cos[pos * half + i] = (float)Math.Cos(angle);
                sin[pos * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    /// <summary>
    /// cos and sin tables, each [maxPos, D/2], for the given inverse frequencies (D/2 of them), each value
    /// multiplied by <paramref name="scale"/> (yarn's attention factor; 1 otherwise); computed in double,
    /// rounded to float. The inverse rotation (backward) stays exact for a scaled table: it is the transpose.
    /// </summary>
    public static (float[] Cos, float[] Sin) Table(long maxPos, ReadOnlySpan<double> invFreq, double scale)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxPos);
        int half = invFreq.Length;
        long count = maxPos * half;
        if (count > Array.MaxLength)
        {
            throw new MemoException($"the rotary table for {maxPos} positions x {half} frequencies is too large; use a shorter sequence length");
        }
        var cos = new float[count];
        var sin = new float[count];
        for (long pos = 0; pos < maxPos; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = pos * invFreq[i];
                cos[pos * half + i] = (float)(Math.Cos(angle) * scale);
                sin[pos * half + i] = (float)(Math.Sin(angle) * scale);
            }
        }
        return (cos, sin);
    }

    /// <summary>
    /// Rotates x in place. x: rows of stride rowStride whose first heads*headDim floats are the heads;
    /// cos, sin: tables from <see cref="Table"/> with at least seqLen positions.
    /// </summary>
    public static void Forward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen,
        float* cos, float* sin, WorkerPool pool)
        => Run(x, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, pool, 1f);

    /// <summary>Applies the inverse rotation to dx in place (the gradient of <see cref="Forward"/>).</summary>
    public static void Backward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen,
        float* cos, float* sin, WorkerPool pool)
        => Run(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, pool, -1f);

    private static void Run(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen,
        float* cos, float* sin, WorkerPool pool, float sinSign)
    {
        if (rows <= 0 || heads <= 0) return;
        CheckHeadDim(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        ArgumentOutOfRangeException.ThrowIfNegative(rowOffset);
        var a = new Args
        {
            X = x, Cos = cos, Sin = sin, RowStride = rowStride, RowOffset = rowOffset, SeqLen = seqLen,
            Heads = heads, HeadDim = headDim, SinSign = sinSign,
        };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, (long)heads * headDim), &RotateRows, &a, pool);
    }

    private static void CheckHeadDim(int headDim)
    {
        if (headDim <= 0 || headDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "RoPE needs a positive, even head dimension.");
        }
    }

    // One rotation for both directions: sin is multiplied by SinSign (+1 forward, -1 backward, the
    // transpose: dlo = dlo' * c + dhi' * s; dhi = dhi' * c - dlo' * s). Negation is exact, so the
    // backward gives the same bits as writing its signs out.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int half = a->HeadDim / 2;
        float sign = a->SinSign;
        var vsign = Vector256.Create(sign);
        for (long r = start; r < end; r++)
        {
            long pos = (a->RowOffset + r) % a->SeqLen;
            float* c = a->Cos + pos * half;
            float* s = a->Sin + pos * half;
            float* row = a->X + r * a->RowStride;
            for (int h = 0; h < a->Heads; h++)
            {
                float* lo = row + (long)h * a->HeadDim;
                float* hi = lo + half;
                int i = 0;
                for (; i <= half - 8; i += 8)
                {
                    var vl = Vector256.Load(lo + i);
                    var vh = Vector256.Load(hi + i);
                    var vc = Vector256.Load(c + i);
                    var vs = Vector256.Load(s + i) * vsign;
                    (vl * vc - vh * vs).Store(lo + i);
                    (vh * vc + vl * vs).Store(hi + i);
                }
                for (; i < half; i++)
                {
                    float l = lo[i], u = hi[i], si = s[i] * sign;
                    lo[i] = l * c[i] - u * si;
                    hi[i] = u * c[i] + l * si;
                }
            }
        }
    }
}
