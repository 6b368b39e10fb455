namespace Memo.Cpu.Kernels;

/// <summary>LayerNorm over rows of width C with weight and bias: y = (x - mean) * rstd * w + b.</summary>
public static unsafe class LayerNorm
{
    public static void Forward(long rows, int C, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps, WorkerPool pool)
        => throw new NotImplementedException();

    /// <summary>dx += dL/dx; dw += dL/dw; db += dL/db (fixed-order sums over rows).</summary>
    public static void Backward(long rows, int C, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, WorkerPool pool)
        => throw new NotImplementedException();
}
