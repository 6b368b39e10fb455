using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Benchmarks;

/// <summary>
/// BenchmarkDotNet view of one GEMM: the GPT-2 124M attention-projection forward at B=4, T=1024
/// (C[4096, 768] = X[4096, 768] W[768, 768]^T), on the default pool. Runs in-process, short job (3 warm-up + 3 measured iterations).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(InProcessConfig))]
public unsafe class GemmBenchmark : IDisposable
{
    private const int M = 4096, N = 768, K = 768;
    private NativeBuffer? _a, _b, _c;

    [GlobalSetup]
    public void Setup()
    {
        _a = new NativeBuffer((long)M * K * sizeof(float), zero: false);
        _b = new NativeBuffer((long)N * K * sizeof(float), zero: false);
        _c = new NativeBuffer((long)M * N * sizeof(float));
        var rng = new Random(1);
        for (long i = 0; i < (long)M * K; i++) _a.Floats[i] = rng.NextSingle() - 0.5f;
        for (long i = 0; i < (long)N * K; i++) _b.Floats[i] = rng.NextSingle() - 0.5f;
    }

    [Benchmark]
    public void AttnProjForward()
        => Gemm.Multiply(false, true, M, N, K, _a!.Floats, K, _b!.Floats, K, _c!.Floats, N, accumulate: false, WorkerPool.Default);

    [GlobalCleanup]
    public void Dispose()
    {
        _a?.Dispose();
        _b?.Dispose();
        _c?.Dispose();
        GC.SuppressFinalize(this);
    }

    private sealed class InProcessConfig : BenchmarkDotNet.Configs.ManualConfig
    {
        public InProcessConfig() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
    }
}
