namespace Memo.Cpu.Kernels;

/// <summary>RMSNorm over rows of width C: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).</summary>
public static unsafe class RmsNorm
{
    public static void Forward(long rows, int C, float* x, float* w, float* y, float* rstd, float eps, WorkerPool pool)
        => throw new NotImplementedException();

    /// <summary>dx += dL/dx; dw += dL/dw (a fixed-order sum over rows).</summary>
    public static void Backward(long rows, int C, float* dy, float* x, float* w, float* rstd, float* dx, float* dw, WorkerPool pool)
        => throw new NotImplementedException();
}
