using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// The AdamW update with PyTorch <c>torch.optim.AdamW</c> semantics (decoupled weight decay,
/// bias-corrected moments), plus the helpers for global-norm gradient clipping. Element-wise in
/// float, with the scalar factors computed in double as PyTorch does:
/// <code>
/// p = p * (1 - lr*wd)
/// m = m*b1 + (1-b1)*g
/// v = v*b2 + (1-b2)*g*g
/// p = p - (lr / (1 - b1^step)) * (m / (sqrt(v) / sqrt(1 - b2^step) + eps))
/// </code>
/// Vector lanes and the scalar tail do the same IEEE operations (no fused multiply-add), so results
/// do not depend on the chunking or the thread count.
/// </summary>
public static unsafe class AdamW
{
    private struct StepArgs
    {
        public float* P;
        public float* G;
        public float* M;
        public float* V;
        public float Decay;
        public float B1;
        public float C1;
        public float B2;
        public float C2;
        public float Bc2Sqrt;
        public float Eps;
        public float NegStepSize;
    }

    private struct SumArgs
    {
        public float* X;
        public double* Partials;
        public long N;
        public long ChunkLen;
        public float Scale;
    }

    /// <summary>Partial sums one <see cref="SumOfSquares"/> call combines at most.</summary>
    private const int MaxPartials = 1024;

    /// <summary>
    /// One AdamW step over n parameters. step is the 1-based count of steps taken, this one included.
    /// </summary>
    public static void Step(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2,
        float eps, float weightDecay, long step, WorkerPool pool)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        if (n <= 0) return;
        double bc1 = 1 - Math.Pow(beta1, step);
        double bc2 = 1 - Math.Pow(beta2, step);
        var a = new StepArgs
        {
            P = param, G = grad, M = m, V = v,
            Decay = (float)(1 - (double)lr * weightDecay),
            B1 = beta1, C1 = (float)(1 - (double)beta1),
            B2 = beta2, C2 = (float)(1 - (double)beta2),
            Bc2Sqrt = (float)Math.Sqrt(bc2),
            Eps = eps,
            NegStepSize = (float)(-(double)lr / bc1),
        };
        KernelSplit.Run(n, KernelSplit.PerChunk(n, 4), &StepRange, &a, pool);
    }

    /// <summary>sum of x[i]^2 in double, in a fixed order that depends only on n.</summary>
    public static double SumOfSquares(long n, float* x, WorkerPool pool)
    {
        if (n <= 0) return 0;
        // Chunk length depends on n only: at most MaxPartials chunks, each a multiple of 8 long.
        long chunkLen = Math.Max(KernelSplit.MinWork, (n + MaxPartials - 1) / MaxPartials);
        chunkLen = (chunkLen + 7) & ~7L;
        long chunks = (n + chunkLen - 1) / chunkLen;
        double* partials = stackalloc double[MaxPartials];
        var a = new SumArgs { X = x, Partials = partials, N = n, ChunkLen = chunkLen };
        KernelSplit.Run(chunks, 1, &SumChunks, &a, pool);
        double total = 0;
        for (long i = 0; i < chunks; i++) total += partials[i];
        return total;
    }

    /// <summary>x[i] *= s.</summary>
    public static void Scale(long n, float* x, float s, WorkerPool pool)
    {
        if (n <= 0) return;
        var a = new SumArgs { X = x, N = n, Scale = s };
        KernelSplit.Run(n, KernelSplit.PerChunk(n, 1), &ScaleRange, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StepRange(long start, long end, void* state)
    {
        var a = (StepArgs*)state;
        float* p = a->P + start;
        float* g = a->G + start;
        float* m = a->M + start;
        float* v = a->V + start;
        long n = end - start;
        var decay = Vector256.Create(a->Decay);
        var b1 = Vector256.Create(a->B1);
        var c1 = Vector256.Create(a->C1);
        var b2 = Vector256.Create(a->B2);
        var c2 = Vector256.Create(a->C2);
        var bc2 = Vector256.Create(a->Bc2Sqrt);
        var eps = Vector256.Create(a->Eps);
        var ns = Vector256.Create(a->NegStepSize);
        long i = 0;
        for (; i <= n - 8; i += 8)
        {
            var gi = Vector256.Load(g + i);
            var mi = Vector256.Load(m + i) * b1 + c1 * gi;
            var vi = Vector256.Load(v + i) * b2 + c2 * gi * gi;
            var denom = Vector256.Sqrt(vi) / bc2 + eps;
            var pi = Vector256.Load(p + i) * decay;
            (pi + ns * (mi / denom)).Store(p + i);
            mi.Store(m + i);
            vi.Store(v + i);
        }
        for (; i < n; i++)
        {
            float gi = g[i];
            float mi = m[i] * a->B1 + a->C1 * gi;
            float vi = v[i] * a->B2 + a->C2 * gi * gi;
            float denom = MathF.Sqrt(vi) / a->Bc2Sqrt + a->Eps;
            float pi = p[i] * a->Decay;
            p[i] = pi + a->NegStepSize * (mi / denom);
            m[i] = mi;
            v[i] = vi;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumChunks(long start, long end, void* state)
    {
        var a = (SumArgs*)state;
        for (long c = start; c < end; c++)
        {
            long s = c * a->ChunkLen;
            long e = Math.Min(s + a->ChunkLen, a->N);
            a->Partials[c] = SumOfSquaresDouble(a->X + s, e - s);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double SumOfSquaresDouble(float* x, long n)
    {
        var a0 = Vector256<double>.Zero;
        var a1 = Vector256<double>.Zero;
        var a2 = Vector256<double>.Zero;
        var a3 = Vector256<double>.Zero;
        long i = 0;
        for (; i <= n - 16; i += 16)
        {
            var (l0, h0) = Vector256.Widen(Vector256.Load(x + i));
            var (l1, h1) = Vector256.Widen(Vector256.Load(x + i + 8));
            a0 += l0 * l0;
            a1 += h0 * h0;
            a2 += l1 * l1;
            a3 += h1 * h1;
        }
        double sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        for (; i < n; i++)
        {
            double d = x[i];
            sum += d * d;
        }
        return sum;
    }

    private static void ScaleRange(long start, long end, void* state)
    {
        var a = (SumArgs*)state;
        var x = new Span<float>(a->X + start, (int)(end - start));
        TensorPrimitives.Multiply(x, a->Scale, x);
    }
}
