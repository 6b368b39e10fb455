namespace Memo.Cpu.Kernels;

/// <summary>
/// Rotary position embedding in the Hugging Face Llama (rotate-half) convention, applied in place
/// to the first <c>heads</c> heads of each row: for i in [0, D/2), with c = cos(pos*f_i), s = sin(pos*f_i),
/// f_i = theta^(-2i/D): x'[i] = x[i]*c - x[i+D/2]*s and x'[i+D/2] = x[i+D/2]*c + x[i]*s.
/// Row r of the call has position (rowOffset + r) % seqLen. Backward applies the inverse rotation.
/// </summary>
public static unsafe class Rope
{
    /// <summary>cos and sin tables, each [maxPos, D/2], computed in double and rounded to float.</summary>
    public static (float[] Cos, float[] Sin) Table(long maxPos, int headDim, double theta) => throw new NotImplementedException();

    public static void Forward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen,
        float* cos, float* sin, WorkerPool pool) => throw new NotImplementedException();

    public static void Backward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen,
        float* cos, float* sin, WorkerPool pool) => throw new NotImplementedException();
}
