namespace Memo.Cpu.Kernels;

public static unsafe class AdamW
{
    public static void Step(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step, WorkerPool pool)
        => throw new NotImplementedException();

    public static double SumOfSquares(long n, float* x, WorkerPool pool) => throw new NotImplementedException();

    public static void Scale(long n, float* x, float s, WorkerPool pool) => throw new NotImplementedException();
}
