using System.Numerics.Tensors;

namespace Memo.Cpu.Kernels;

/// <summary>
/// Token embedding lookup, plus learned positions when wpe is not null. Row r has position
/// (rowOffset + r) % seqLen. Backward scatter-adds into the tables; it splits the work by column
/// blocks and each block walks all rows in order, so every table element receives its updates in
/// row order whatever the thread count (repeated tokens included).
/// </summary>
public static unsafe class Embedding
{
    private struct Args
    {
        public int* Tokens;
        public float* Wte;
        public float* Wpe;
        public float* X;
        public long Rows;
        public long RowOffset;
        public long SeqLen;
        public int C;
    }

    /// <summary>x[r] = wte[tokens[r]] (+ wpe[(rowOffset + r) % seqLen]). wte: (V, C); wpe: (seqLen, C) or null; x: (rows, C).</summary>
    public static void Forward(long rows, int C, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x, WorkerPool pool)
    {
        if (rows <= 0 || C <= 0) return;
        if (wpe != null) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        var a = new Args { Tokens = tokens, Wte = wte, Wpe = wpe, X = x, Rows = rows, RowOffset = rowOffset, SeqLen = seqLen, C = C };
        KernelSplit.Run(rows, KernelSplit.PerChunk(rows, C), &ForwardRows, &a, pool);
    }

    /// <summary>dwte[tokens[r]] += dx[r]; dwpe[pos(r)] += dx[r] when dwpe is not null. Fixed order per element.</summary>
    public static void Backward(long rows, int C, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen, WorkerPool pool)
    {
        if (rows <= 0 || C <= 0) return;
        if (dwpe != null) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        var a = new Args { Tokens = tokens, Wte = dwte, Wpe = dwpe, X = dx, Rows = rows, RowOffset = rowOffset, SeqLen = seqLen, C = C };
        KernelSplit.Run(C, KernelSplit.ColumnsPerChunk(rows, C), &BackwardCols, &a, pool);
    }

    private static void ForwardRows(long start, long end, void* p)
    {
        var a = (Args*)p;
        long C = a->C;
        int n = a->C;
        for (long r = start; r < end; r++)
        {
            var te = new ReadOnlySpan<float>(a->Wte + a->Tokens[r] * C, n);
            var x = new Span<float>(a->X + r * C, n);
            if (a->Wpe == null)
            {
                te.CopyTo(x);
            }
            else
            {
                long pos = (a->RowOffset + r) % a->SeqLen;
                TensorPrimitives.Add(te, new ReadOnlySpan<float>(a->Wpe + pos * C, n), x);
            }
        }
    }

    private static void BackwardCols(long c0, long c1, void* p)
    {
        var a = (Args*)p;
        long C = a->C;
        int n = (int)(c1 - c0);
        for (long r = 0; r < a->Rows; r++)
        {
            var d = new ReadOnlySpan<float>(a->X + r * C + c0, n);
            var te = new Span<float>(a->Wte + a->Tokens[r] * C + c0, n);
            TensorPrimitives.Add(te, d, te);
            if (a->Wpe != null)
            {
                long pos = (a->RowOffset + r) % a->SeqLen;
                var pe = new Span<float>(a->Wpe + pos * C + c0, n);
                TensorPrimitives.Add(pe, d, pe);
            }
        }
    }
}
