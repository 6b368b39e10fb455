namespace Memo.Cpu.Kernels;

/// <summary>Softmax cross-entropy over rows of logits, fused with its gradient.</summary>
public static unsafe class CrossEntropy
{
    /// <summary>
    /// For each row r of <paramref name="logits"/> (rows x V, leading dimension ld), computes
    /// loss_r = logsumexp(row) - row[target_r], stores it in <paramref name="losses"/>[r], and replaces the row by
    /// gradScale * (softmax(row) - onehot(target_r)).
    /// </summary>
    public static void ForwardBackward(long rows, int V, float* logits, long ld, int* targets, float* losses, float gradScale, WorkerPool pool)
        => throw new NotImplementedException();
}
