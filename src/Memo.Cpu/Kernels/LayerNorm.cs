using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

/// <summary>
/// LayerNorm over rows of width C with weight and bias: y = (x - mean) * rstd * w + b, with the
/// mean and the variance (two-pass, so no cancellation) computed per row in float.
/// Forward and the dx part of backward are row-local; dw and db are column-block reductions over all
/// rows in row order, independent of the thread count. Backward accumulates (+=) into dx, dw, db.
/// Reference: a per-row double-precision loop (tests/Memo.Tests/Kernels/OpsTests.cs).
/// </summary>
public static unsafe class LayerNorm
{
    private struct Args
    {
        public float* X;
        public float* W;
        public float* B;
        public float* Y;
        public float* Mean;
        public float* Rstd;
        public float* Dy;
        public float* Dx;
        public float* Dw;
        public float* Db;
        public long Rows;
        public int C;
        public float Eps;
    }

    /// <summary>x, y: (rows, C); w, b: (C); mean, rstd: (rows), each may be null when not needed.</summary>
    public static void Forward(long rows, int C, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps, WorkerPool pool)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(C);
        var a = new Args { X = x, W = w, B = b, Y = y, Mean = mean, Rstd = rstd, Rows = rows, C = C, Eps = eps };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 2L * C), &ForwardRows, &a, pool);
    }

    /// <summary>dx += dL/dx; dw += dL/dw; db += dL/db (fixed-order sums over rows).</summary>
    public static void Backward(long rows, int C, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, WorkerPool pool)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(C);
        var a = new Args { X = x, W = w, Mean = mean, Rstd = rstd, Dy = dy, Dx = dx, Dw = dw, Db = db, Rows = rows, C = C };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 2L * C), &BackwardRows, &a, pool);
        KernelSplit.Run(C, KernelSplit.ColumnsPerChunk(rows, C), &ParamGradCols, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int C = a->C;
        float* w = a->W;
        float* b = a->B;
        for (long r = start; r < end; r++)
        {
            float* x = a->X + r * C;
            float* y = a->Y + r * C;
            float m = TensorPrimitives.Sum(new ReadOnlySpan<float>(x, C)) / C;
            float v = RowMath.SumSquaredDeviation(x, C, m) / C;
            float s = 1f / MathF.Sqrt(v + a->Eps);
            if (a->Mean != null) a->Mean[r] = m;
            if (a->Rstd != null) a->Rstd[r] = s;
            var vm = Vector256.Create(m);
            var vs = Vector256.Create(s);
            int i = 0;
            for (; i <= C - 8; i += 8)
            {
                ((Vector256.Load(x + i) - vm) * vs * Vector256.Load(w + i) + Vector256.Load(b + i)).Store(y + i);
            }
            for (; i < C; i++) y[i] = (x[i] - m) * s * w[i] + b[i];
        }
    }

    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) * rstd.
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
            float m = a->Mean[r];
            float s = a->Rstd[r];
            RowMath.LayerNormSums(dy, w, x, m, s, C, out float sumG, out float sumGX);
            float mg = sumG / C;
            float mgx = sumGX / C;
            var vm = Vector256.Create(m);
            var vs = Vector256.Create(s);
            var vmg = Vector256.Create(mg);
            var vmgx = Vector256.Create(mgx);
            int i = 0;
            for (; i <= C - 8; i += 8)
            {
                var g = Vector256.Load(dy + i) * Vector256.Load(w + i);
                var xhat = (Vector256.Load(x + i) - vm) * vs;
                (Vector256.Load(dx + i) + vs * (g - vmg - xhat * vmgx)).Store(dx + i);
            }
            for (; i < C; i++)
            {
                float g = dy[i] * w[i];
                float xhat = (x[i] - m) * s;
                dx[i] += s * (g - mg - xhat * mgx);
            }
        }
    }

    // dw[c] += sum over r of dy[r, c] * xhat[r, c]; db[c] += sum over r of dy[r, c]; rows in order.
    private static void ParamGradCols(long c0, long c1, void* p)
    {
        for (long cb = c0; cb < c1; cb += KernelSplit.ColumnBlock)
        {
            ParamGradColsBlock(cb, Math.Min(cb + KernelSplit.ColumnBlock, c1), (Args*)p);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ParamGradColsBlock(long c0, long c1, Args* a)
    {
        long C = a->C;
        int n = (int)(c1 - c0);
        float* accW = stackalloc float[KernelSplit.ColumnBlock];
        float* accB = stackalloc float[KernelSplit.ColumnBlock];
        new Span<float>(accW, n).Clear();
        new Span<float>(accB, n).Clear();
        for (long r = 0; r < a->Rows; r++)
        {
            float* x = a->X + r * C + c0;
            float* dy = a->Dy + r * C + c0;
            float m = a->Mean[r];
            float s = a->Rstd[r];
            var vm = Vector256.Create(m);
            var vs = Vector256.Create(s);
            int i = 0;
            for (; i <= n - 8; i += 8)
            {
                var d = Vector256.Load(dy + i);
                (Vector256.Load(accW + i) + d * ((Vector256.Load(x + i) - vm) * vs)).Store(accW + i);
                (Vector256.Load(accB + i) + d).Store(accB + i);
            }
            for (; i < n; i++)
            {
                accW[i] += dy[i] * ((x[i] - m) * s);
                accB[i] += dy[i];
            }
        }
        float* dw = a->Dw + c0;
        float* db = a->Db + c0;
        for (int i = 0; i < n; i++)
        {
            dw[i] += accW[i];
            db[i] += accB[i];
        }
    }
}
