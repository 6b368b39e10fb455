using System.Diagnostics;
using System.Globalization;
using Memo.CostModel;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Cli.Commands;

/// <summary>
/// Fills the <c>cpu</c> profile from measurements on this machine: the CPU matmul kernel's FLOP/s (giving
/// gemm_efficiency against the profile's peak) and memcpy bandwidth (the CPU backend's swap copies are memcpy:
/// host_link_bandwidth; a copy reads and writes, so memory_bandwidth is twice the copy rate).
/// </summary>
public sealed unsafe class CpuMeasure : ILocalMeasure
{
    private readonly long _copyBytes;
    private readonly double _minSeconds;

    /// <summary>Measures copies of <paramref name="copyBytes"/> (larger than the caches) for at least <paramref name="minSeconds"/> per figure.</summary>
    public CpuMeasure(long copyBytes = 128L << 20, double minSeconds = 0.25)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(copyBytes, 1L << 20);
        _copyBytes = copyBytes;
        _minSeconds = minSeconds;
    }

    public bool CanMeasure(DeviceProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        return profile.Name == "cpu";
    }

    public DeviceProfile Measure(DeviceProfile profile, ICollection<string> notes)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(notes);
        var measured = new List<string>(profile.Measured);
        var p = profile;

        double? gemm = MeasureGemm(notes, _minSeconds);
        if (gemm is double flops)
        {
            p = p with { GemmEfficiency = Math.Min(1.0, flops / p.PeakFp32Flops) };
            measured.Add("gemm_efficiency");
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"measured CPU matmul: {flops / 1e9:0.0} GFLOP/s (gemm_efficiency {p.GemmEfficiency:0.000} of the assumed {p.PeakFp32Flops / 1e9:0} GFLOP/s peak)"));
        }

        double copy = MeasureCopy(_copyBytes, _minSeconds);
        p = p with { HostLinkBandwidth = copy, MemoryBandwidth = 2 * copy };
        measured.Add("host_link_bandwidth");
        measured.Add("memory_bandwidth");
        notes.Add(string.Create(CultureInfo.InvariantCulture, $"measured memcpy: {copy / 1e9:0.0} GB/s (host_link_bandwidth; memory_bandwidth {2 * copy / 1e9:0.0} GB/s read+write)"));
        return p with { Measured = measured };
    }

    private static double? MeasureGemm(ICollection<string> notes, double minSeconds)
    {
        const long n = 512;
        using var a = new NativeBuffer(n * n * sizeof(float));
        using var b = new NativeBuffer(n * n * sizeof(float));
        using var c = new NativeBuffer(n * n * sizeof(float));
        var rng = new Random(1);
        for (long i = 0; i < n * n; i++)
        {
            a.Floats[i] = (float)rng.NextDouble() - 0.5f;
            b.Floats[i] = (float)rng.NextDouble() - 0.5f;
        }
        var pool = WorkerPool.Default;
        try
        {
            Gemm.Multiply(false, false, n, n, n, a.Floats, n, b.Floats, n, c.Floats, n, accumulate: false, pool);
        }
        catch (NotImplementedException)
        {
            notes.Add("the CPU matmul kernel is not available in this build; gemm_efficiency stays assumed");
            return null;
        }
        int reps = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < minSeconds || reps < 3)
        {
            Gemm.Multiply(false, false, n, n, n, a.Floats, n, b.Floats, n, c.Floats, n, accumulate: false, pool);
            reps++;
        }
        return 2.0 * n * n * n * reps / sw.Elapsed.TotalSeconds;
    }

    private static double MeasureCopy(long bytes, double minSeconds)
    {
        using var src = new NativeBuffer(bytes);
        using var dst = new NativeBuffer(bytes);
        int chunks = Math.Max(1, Environment.ProcessorCount);
        long per = bytes / chunks;
        nint s = (nint)src.Pointer, d = (nint)dst.Pointer;
        void CopyAll() => Parallel.For(0, chunks, i =>
        {
            long len = i == chunks - 1 ? bytes - i * per : per;
            Buffer.MemoryCopy((void*)(s + (nint)(i * per)), (void*)(d + (nint)(i * per)), len, len);
        });
        CopyAll(); // touch pages once
        int reps = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < minSeconds || reps < 3)
        {
            CopyAll();
            reps++;
        }
        return (double)bytes * reps / sw.Elapsed.TotalSeconds;
    }
}
