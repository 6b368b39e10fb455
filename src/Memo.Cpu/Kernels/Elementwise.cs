using System.Numerics.Tensors;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Element-wise helpers over long ranges (residual adds, copies, fills), split into fixed chunks so
/// spans stay int-sized and the work spreads over the pool. Results do not depend on the chunking.
/// </summary>
public static unsafe class Elementwise
{
    private const long Chunk = 1 << 16;

    private struct Args
    {
        public float* A;
        public float* B;
        public float* Dst;
        public long N;
        public float Value;
    }

    /// <summary>dst = a + b (dst may alias a or b).</summary>
    public static void Add(long n, float* a, float* b, float* dst, WorkerPool pool)
    {
        var s = new Args { A = a, B = b, Dst = dst, N = n };
        Run(n, &AddBody, &s, pool);
    }

    /// <summary>dst = a (non-overlapping).</summary>
    public static void Copy(long n, float* a, float* dst, WorkerPool pool)
    {
        var s = new Args { A = a, Dst = dst, N = n };
        Run(n, &CopyBody, &s, pool);
    }

    /// <summary>dst[i] = value.</summary>
    public static void Fill(long n, float* dst, float value, WorkerPool pool)
    {
        var s = new Args { Dst = dst, N = n, Value = value };
        Run(n, &FillBody, &s, pool);
    }

    private static void Run(long n, delegate* managed<int, void*, void> body, Args* s, WorkerPool pool)
    {
        if (n <= 0) return;
        long chunks = (n + Chunk - 1) / Chunk;
        pool.For(checked((int)chunks), body, s);
    }

    private static (long Start, int Len) Range(int i, long n)
    {
        long start = i * Chunk;
        return (start, (int)Math.Min(Chunk, n - start));
    }

    private static void AddBody(int i, void* p)
    {
        var s = (Args*)p;
        var (start, len) = Range(i, s->N);
        TensorPrimitives.Add(new ReadOnlySpan<float>(s->A + start, len), new ReadOnlySpan<float>(s->B + start, len), new Span<float>(s->Dst + start, len));
    }

    private static void CopyBody(int i, void* p)
    {
        var s = (Args*)p;
        var (start, len) = Range(i, s->N);
        new ReadOnlySpan<float>(s->A + start, len).CopyTo(new Span<float>(s->Dst + start, len));
    }

    private static void FillBody(int i, void* p)
    {
        var s = (Args*)p;
        var (start, len) = Range(i, s->N);
        new Span<float>(s->Dst + start, len).Fill(s->Value);
    }
}
