using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// RMSNorm over rows of width C: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
/// Forward and the dx part of backward are row-local: a row computed alone equals the same row in a
/// batch. dw is a column-block reduction over all rows in row order, so it does not depend on the
/// thread count. Reference: a per-row double-precision loop (tests/Memo.Tests/Kernels/OpsTests.cs).
/// </summary>
public static unsafe class RmsNorm
{
    private struct Args
    {
        public float* X;
        public float* W;
        public float* Y;
        public float* Rstd;
        public float* Dy;
        public float* Dx;
        public float* Dw;
        public long Rows;
        public int C;
        public float Eps;
    }

    /// <summary>x, y: (rows, C); w: (C); rstd: (rows), may be null when not needed.</summary>
    public static void Forward(long rows, int C, float* x, float* w, float* y, float* rstd, float eps, WorkerPool pool)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(C);
        var a = new Args { X = x, W = w, Y = y, Rstd = rstd, Rows = rows, C = C, Eps = eps };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, C), &ForwardRows, &a, pool);
    }

    /// <summary>dx += dL/dx; dw += dL/dw (a fixed-order sum over rows).</summary>
    public static void Backward(long rows, int C, float* dy, float* x, float* w, float* rstd, float* dx, float* dw, WorkerPool pool)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(C);
        var a = new Args { X = x, W = w, Rstd = rstd, Dy = dy, Dx = dx, Dw = dw, Rows = rows, C = C };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 2L * C), &BackwardRows, &a, pool);
        KernelSplit.Run(C, KernelSplit.ColumnsPerChunk(rows, C), &WeightGradCols, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int C = a->C;
        float* w = a->W;
        for (long r = start; r < end; r++)
        {
            float* x = a->X + r * C;
            float* y = a->Y + r * C;
            float ms = TensorPrimitives.SumOfSquares(new ReadOnlySpan<float>(x, C)) / C;
            float s = 1f / MathF.Sqrt(ms + a->Eps);
            if (a->Rstd != null) a->Rstd[r] = s;
            var vs = Vector256.Create(s);
            int i = 0;
            for (; i <= C - 8; i += 8) (Vector256.Load(x + i) * vs * Vector256.Load(w + i)).Store(y + i);
            for (; i < C; i++) y[i] = x[i] * s * w[i];
        }
    }

    // dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * w, xhat = x * rstd,
    //    = rstd * g - k * x with k = rstd^3 * mean(g * x).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int C = a->C;
        float* w = a->W;
        for (long r = start; r < end; r++)
        {
            float* x = a->X + r * C;
            float* dy = a->Dy + r * C;
            float* dx = a->Dx + r * C;
            float s = a->Rstd[r];
            float k = s * s * s * (RowMath.Dot3(dy, w, x, C) / C);
            var vs = Vector256.Create(s);
            var vk = Vector256.Create(k);
            int i = 0;
            for (; i <= C - 8; i += 8)
            {
                var g = Vector256.Load(dy + i) * Vector256.Load(w + i);
                (Vector256.Load(dx + i) + (vs * g - vk * Vector256.Load(x + i))).Store(dx + i);
            }
            for (; i < C; i++) dx[i] += s * (dy[i] * w[i]) - k * x[i];
        }
    }

    // dw[c] += sum over r in order of dy[r, c] * (x[r, c] * rstd[r]).
    private static void WeightGradCols(long c0, long c1, void* p)
    {
        for (long cb = c0; cb < c1; cb += KernelSplit.ColumnBlock)
        {
            WeightGradColsBlock(cb, Math.Min(cb + KernelSplit.ColumnBlock, c1), (Args*)p);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradColsBlock(long c0, long c1, Args* a)
    {
        long C = a->C;
        int n = (int)(c1 - c0);
        float* acc = stackalloc float[KernelSplit.ColumnBlock];
        new Span<float>(acc, n).Clear();
        for (long r = 0; r < a->Rows; r++)
        {
            float* x = a->X + r * C + c0;
            float* dy = a->Dy + r * C + c0;
            var vs = Vector256.Create(a->Rstd[r]);
            float s = a->Rstd[r];
            int i = 0;
            for (; i <= n - 8; i += 8)
            {
                (Vector256.Load(acc + i) + Vector256.Load(dy + i) * (Vector256.Load(x + i) * vs)).Store(acc + i);
            }
            for (; i < n; i++) acc[i] += dy[i] * (x[i] * s);
        }
        float* dw = a->Dw + c0;
        for (int i = 0; i < n; i++) dw[i] += acc[i];
    }
}
