using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Softmax cross-entropy over rows of logits, fused with its gradient. Per row, in float: the max,
/// e = exp(x - max) (stored in place), the sum of e in a fixed order, loss = (max - x[t]) + log(sum),
/// then the row becomes e * (gradScale / sum) with gradScale subtracted at the target. Every row is
/// independent of the others. Reference: PyTorch <c>F.cross_entropy</c> (a double loop in the tests).
/// </summary>
public static unsafe class CrossEntropy
{
    private struct Args
    {
        public float* Logits;
        public int* Targets;
        public float* Losses;
        public long Ld;
        public int V;
        public float GradScale;
    }

    /// <summary>
    /// For each row r of <paramref name="logits"/> (rows x V, leading dimension ld), computes
    /// loss_r = logsumexp(row) - row[target_r], stores it in <paramref name="losses"/>[r], and replaces the row by
    /// gradScale * (softmax(row) - onehot(target_r)).
    /// </summary>
    public static void ForwardBackward(long rows, int V, float* logits, long ld, int* targets, float* losses, float gradScale, WorkerPool pool)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(V);
        ArgumentOutOfRangeException.ThrowIfLessThan(ld, V);
        for (long r = 0; r < rows; r++)
        {
            int t = targets[r];
            if ((uint)t >= (uint)V)
            {
                throw new MemoException($"target token id {t} at row {r} is outside the vocabulary [0, {V}); check that the token data matches the model's vocab_size");
            }
        }
        var a = new Args { Logits = logits, Targets = targets, Losses = losses, Ld = ld, V = V, GradScale = gradScale };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 4L * V), &Rows, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int V = a->V;
        for (long r = start; r < end; r++)
        {
            float* x = a->Logits + r * a->Ld;
            int t = a->Targets[r];
            float xt = x[t];
            float max = TensorPrimitives.Max(new ReadOnlySpan<float>(x, V));
            float sum = ExpInPlace(x, V, max);
            a->Losses[r] = (max - xt) + MathF.Log(sum);
            var row = new Span<float>(x, V);
            TensorPrimitives.Multiply(row, a->GradScale / sum, row);
            x[t] -= a->GradScale;
        }
    }

    /// <summary>x[i] = exp(x[i] - max); returns the sum of the new values (fixed order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float ExpInPlace(float* x, int n, float max)
    {
        var vm = Vector256.Create(max);
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var e0 = Vector256.Exp(Vector256.Load(x + i) - vm);
            var e1 = Vector256.Exp(Vector256.Load(x + i + 8) - vm);
            var e2 = Vector256.Exp(Vector256.Load(x + i + 16) - vm);
            var e3 = Vector256.Exp(Vector256.Load(x + i + 24) - vm);
            e0.Store(x + i);
            e1.Store(x + i + 8);
            e2.Store(x + i + 16);
            e3.Store(x + i + 24);
            a0 += e0;
            a1 += e1;
            a2 += e2;
            a3 += e3;
        }
        for (; i <= n - 8; i += 8)
        {
            var e = Vector256.Exp(Vector256.Load(x + i) - vm);
            e.Store(x + i);
            a0 += e;
        }
        if (i < n)
        {
            // Padding lanes hold -inf, whose exp is 0: they add nothing to the sum.
            var e = Vector256.Exp(RowMath.LoadTail(x + i, n - i, float.NegativeInfinity) - vm);
            RowMath.StoreTail(e, x + i, n - i);
            a1 += e;
        }
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }
}
