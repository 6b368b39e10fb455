namespace Memo.Cpu.Kernels;

/// <summary>SwiGLU: rows of [g (F) | u (F)] give m = silu(g) * u.</summary>
public static unsafe class SwiGlu
{
    public static void Forward(long rows, int F, float* gu, float* m, WorkerPool pool) => throw new NotImplementedException();

    /// <summary>Writes (overwrites) dgu, rows of [dg | du].</summary>
    public static void Backward(long rows, int F, float* dm, float* gu, float* dgu, WorkerPool pool) => throw new NotImplementedException();
}

/// <summary>GELU, tanh form (GPT-2 "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
public static unsafe class Gelu
{
    public static void Forward(long n, float* x, float* y, WorkerPool pool) => throw new NotImplementedException();

    /// <summary>Writes (overwrites) dx.</summary>
    public static void Backward(long n, float* dy, float* x, float* dx, WorkerPool pool) => throw new NotImplementedException();
}

/// <summary>Bias add and its gradient.</summary>
public static unsafe class Bias
{
    /// <summary>y[r, :] += b for each of rows rows of width N.</summary>
    public static void Forward(long rows, int N, float* y, float* b, WorkerPool pool) => throw new NotImplementedException();

    /// <summary>db += sum over rows of dy (fixed order).</summary>
    public static void Backward(long rows, int N, float* dy, float* db, WorkerPool pool) => throw new NotImplementedException();
}
