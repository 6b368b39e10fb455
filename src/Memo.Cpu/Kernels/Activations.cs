using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Memo.Cpu.Kernels;

// Every element of SwiGLU and GELU goes through the same Vector256 math (a partial last vector is
// padded, computed whole, and stored partly), so an element's result never depends on the row count,
// the chunking or where the element falls in a vector: subsets of rows give the same bits.

/// <summary>SwiGLU: rows of [g (F) | u (F)] give m = silu(g) * u, silu(g) = g * sigmoid(g).</summary>
public static unsafe class SwiGlu
{
    private struct Args
    {
        public float* Gu;
        public float* M;
        public float* Dm;
        public float* Dgu;
        public int F;
    }

    /// <summary>gu: (rows, 2F); m: (rows, F).</summary>
    public static void Forward(long rows, int F, float* gu, float* m, WorkerPool pool)
    {
        if (rows <= 0 || F <= 0) return;
        var a = new Args { Gu = gu, M = m, F = F };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 4L * F), &ForwardRows, &a, pool);
    }

    /// <summary>Writes (overwrites) dgu, rows of [dg | du].</summary>
    public static void Backward(long rows, int F, float* dm, float* gu, float* dgu, WorkerPool pool)
    {
        if (rows <= 0 || F <= 0) return;
        var a = new Args { Gu = gu, Dm = dm, Dgu = dgu, F = F };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, 6L * F), &BackwardRows, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Forward(Vector256<float> g, Vector256<float> u)
        => g * ActivationMath.Sigmoid(g) * u;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int F = a->F;
        for (long r = start; r < end; r++)
        {
            float* g = a->Gu + r * 2 * F;
            float* u = g + F;
            float* m = a->M + r * F;
            int i = 0;
            for (; i <= F - 8; i += 8) Forward(Vector256.Load(g + i), Vector256.Load(u + i)).Store(m + i);
            if (i < F)
            {
                int t = F - i;
                RowMath.StoreTail(Forward(RowMath.LoadTail(g + i, t, 0f), RowMath.LoadTail(u + i, t, 0f)), m + i, t);
            }
        }
    }

    // s = sigmoid(g); dg = dm * u * s * (1 + g * (1 - s)); du = dm * g * s.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Backward(Vector256<float> dm, Vector256<float> g, Vector256<float> u, out Vector256<float> dg, out Vector256<float> du)
    {
        var one = Vector256<float>.One;
        var s = ActivationMath.Sigmoid(g);
        dg = dm * u * (s * (one + g * (one - s)));
        du = dm * (g * s);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int F = a->F;
        for (long r = start; r < end; r++)
        {
            float* g = a->Gu + r * 2 * F;
            float* u = g + F;
            float* dg = a->Dgu + r * 2 * F;
            float* du = dg + F;
            float* dm = a->Dm + r * F;
            int i = 0;
            for (; i <= F - 8; i += 8)
            {
                Backward(Vector256.Load(dm + i), Vector256.Load(g + i), Vector256.Load(u + i), out var vdg, out var vdu);
                vdg.Store(dg + i);
                vdu.Store(du + i);
            }
            if (i < F)
            {
                int t = F - i;
                Backward(RowMath.LoadTail(dm + i, t, 0f), RowMath.LoadTail(g + i, t, 0f), RowMath.LoadTail(u + i, t, 0f), out var vdg, out var vdu);
                RowMath.StoreTail(vdg, dg + i, t);
                RowMath.StoreTail(vdu, du + i, t);
            }
        }
    }
}

/// <summary>
/// GELU, tanh form (GPT-2 "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), computed as
/// x * sigmoid(2z) with z = sqrt(2/pi) (x + 0.044715 x^3), which is the same function without
/// tanh's cancellation. z uses x clamped to [-10, 10] (beyond it sigmoid(2z) is 0 or 1 in float),
/// which keeps x^3 from overflowing.
/// </summary>
public static unsafe class Gelu
{
    private const float K0 = 0.7978845608028654f; // sqrt(2/pi)
    private const float K1 = 0.044715f;
    private const float Clamp = 10f;

    private struct Args
    {
        public float* X;
        public float* Y;
        public float* Dy;
        public float* Dx;
    }

    /// <summary>y = gelu(x) over n elements.</summary>
    public static void Forward(long n, float* x, float* y, WorkerPool pool)
    {
        if (n <= 0) return;
        var a = new Args { X = x, Y = y };
        KernelSplit.Run(n, KernelSplit.PerChunk(n, 1), &ForwardRange, &a, pool);
    }

    /// <summary>Writes (overwrites) dx.</summary>
    public static void Backward(long n, float* dy, float* x, float* dx, WorkerPool pool)
    {
        if (n <= 0) return;
        var a = new Args { X = x, Dy = dy, Dx = dx };
        KernelSplit.Run(n, KernelSplit.PerChunk(n, 1), &BackwardRange, &a, pool);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Forward(Vector256<float> x)
    {
        var xc = Vector256.Clamp(x, Vector256.Create(-Clamp), Vector256.Create(Clamp));
        var z = Vector256.Create(K0) * xc * (Vector256<float>.One + Vector256.Create(K1) * xc * xc);
        return x * ActivationMath.Sigmoid(z + z);
    }

    // d/dx [x * s(2z)] = s + x * 2 s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Backward(Vector256<float> dy, Vector256<float> x)
    {
        var one = Vector256<float>.One;
        var xc = Vector256.Clamp(x, Vector256.Create(-Clamp), Vector256.Create(Clamp));
        var x2 = xc * xc;
        var z = Vector256.Create(K0) * xc * (one + Vector256.Create(K1) * x2);
        var s = ActivationMath.Sigmoid(z + z);
        var dz = Vector256.Create(K0) * (one + Vector256.Create(3f * K1) * x2);
        return dy * (s + xc * (s + s) * (one - s) * dz);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardRange(long start, long end, void* p)
    {
        var a = (Args*)p;
        float* x = a->X + start;
        float* y = a->Y + start;
        int n = (int)(end - start);
        int i = 0;
        for (; i <= n - 8; i += 8) Forward(Vector256.Load(x + i)).Store(y + i);
        if (i < n) RowMath.StoreTail(Forward(RowMath.LoadTail(x + i, n - i, 0f)), y + i, n - i);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardRange(long start, long end, void* p)
    {
        var a = (Args*)p;
        float* x = a->X + start;
        float* dy = a->Dy + start;
        float* dx = a->Dx + start;
        int n = (int)(end - start);
        int i = 0;
        for (; i <= n - 8; i += 8) Backward(Vector256.Load(dy + i), Vector256.Load(x + i)).Store(dx + i);
        if (i < n) RowMath.StoreTail(Backward(RowMath.LoadTail(dy + i, n - i, 0f), RowMath.LoadTail(x + i, n - i, 0f)), dx + i, n - i);
    }
}

/// <summary>Bias add and its gradient.</summary>
public static unsafe class Bias
{
    private struct Args
    {
        public float* Y;
        public float* B;
        public long Rows;
        public int N;
    }

    /// <summary>y[r, :] += b for each of rows rows of width N.</summary>
    public static void Forward(long rows, int N, float* y, float* b, WorkerPool pool)
    {
        if (rows <= 0 || N <= 0) return;
        var a = new Args { Y = y, B = b, Rows = rows, N = N };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, N), &ForwardRows, &a, pool);
    }

    /// <summary>db += sum over rows of dy (fixed order: column blocks, each over all rows in order).</summary>
    public static void Backward(long rows, int N, float* dy, float* db, WorkerPool pool)
    {
        if (rows <= 0 || N <= 0) return;
        var a = new Args { Y = dy, B = db, Rows = rows, N = N };
        KernelSplit.Run(N, KernelSplit.ColumnsPerChunk(rows, N), &BackwardCols, &a, pool);
    }

    private static void ForwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        int N = a->N;
        var b = new ReadOnlySpan<float>(a->B, N);
        for (long r = start; r < end; r++)
        {
            var y = new Span<float>(a->Y + r * N, N);
            TensorPrimitives.Add(y, b, y);
        }
    }

    private static void BackwardCols(long c0, long c1, void* p)
    {
        for (long cb = c0; cb < c1; cb += KernelSplit.ColumnBlock)
        {
            BackwardColsBlock(cb, Math.Min(cb + KernelSplit.ColumnBlock, c1), (Args*)p);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardColsBlock(long c0, long c1, Args* a)
    {
        long N = a->N;
        int n = (int)(c1 - c0);
        float* acc = stackalloc float[KernelSplit.ColumnBlock];
        var accSpan = new Span<float>(acc, n);
        accSpan.Clear();
        for (long r = 0; r < a->Rows; r++)
        {
            TensorPrimitives.Add(accSpan, new ReadOnlySpan<float>(a->Y + r * N + c0, n), accSpan);
        }
        var db = new Span<float>(a->B + c0, n);
        TensorPrimitives.Add(db, accSpan, db);
    }
}

/// <summary>Small Vector256 helpers shared by the activation kernels.</summary>
internal static class ActivationMath
{
    /// <summary>1 / (1 + exp(-z)); exp overflowing to infinity gives exactly 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> z)
        => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-z));
}
