namespace Memo.Cpu.Kernels;

/// <summary>Token embedding lookup, plus learned positions when wpe is not null.</summary>
public static unsafe class Embedding
{
    /// <summary>x[r] = wte[tokens[r]] (+ wpe[(rowOffset + r) % seqLen]).</summary>
    public static void Forward(long rows, int C, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x, WorkerPool pool)
        => throw new NotImplementedException();

    /// <summary>dwte[tokens[r]] += dx[r]; dwpe[pos(r)] += dx[r] when wpe grads are given. Fixed order per element.</summary>
    public static void Backward(long rows, int C, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen, WorkerPool pool)
        => throw new NotImplementedException();
}
