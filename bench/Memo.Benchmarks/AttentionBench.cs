using System.Diagnostics;
using System.Globalization;
using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Benchmarks;

/// <summary>
/// Times the tiled causal attention kernels (forward and backward, median of several runs) at a few
/// sequence lengths and reports GFLOP/s with causal FLOP counts: forward 2 products of
/// 2*B*H*T^2*D/2 each, backward 2.5x forward.
/// Arguments: --t 1024,4096,16384 --d 64 --heads 8 --kv 8 --batch 1 --threads N --reps 5.
/// </summary>
public static unsafe class AttentionBench
{
    public static int Run(string[] args)
    {
        var seqLens = Arg(args, "--t", "1024,4096,16384").Split(',').Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        int dim = int.Parse(Arg(args, "--d", "64"), CultureInfo.InvariantCulture);
        int heads = int.Parse(Arg(args, "--heads", "8"), CultureInfo.InvariantCulture);
        int kvHeads = int.Parse(Arg(args, "--kv", heads.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        int batch = int.Parse(Arg(args, "--batch", "1"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg(args, "--threads", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        int reps = int.Parse(Arg(args, "--reps", "5"), CultureInfo.InvariantCulture);

        using var pool = new WorkerPool(threads);
        Console.WriteLine($"attention: batch {batch}, heads {heads}/{kvHeads}, head dim {dim}, {threads} threads, median of {reps}, Vector512 {(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "accelerated" : "emulated")}");
        Console.WriteLine($"{"T",8} {"fwd ms",10} {"fwd GF/s",9} {"bwd ms",10} {"bwd GF/s",9} {"fwd cpu ms",11} {"bwd cpu ms",11}");
        foreach (long T in seqLens)
        {
            long stride = (long)(heads + 2 * kvHeads) * dim, oStride = (long)heads * dim;
            long rows = batch * T;
            using var qkv = new NativeBuffer(rows * stride * sizeof(float));
            using var grad = new NativeBuffer(rows * stride * sizeof(float));
            using var o = new NativeBuffer(rows * oStride * sizeof(float));
            using var dO = new NativeBuffer(rows * oStride * sizeof(float));
            using var lse = new NativeBuffer(rows * heads * sizeof(float));
            using var ws = new NativeBuffer(Attention.WorkspaceFloats(threads, dim) * sizeof(float));
            var rng = new Random(1);
            for (long i = 0; i < rows * stride; i++) qkv.Floats[i] = (float)(rng.NextDouble() * 2 - 1);
            for (long i = 0; i < rows * oStride; i++) dO.Floats[i] = (float)(rng.NextDouble() * 2 - 1);
            var shape = new AttentionShape(batch, T, heads, kvHeads, dim, stride, stride, oStride, 1 / MathF.Sqrt(dim));
            float* x = qkv.Floats, g = grad.Floats;
            long hd = (long)heads * dim, kvd = (long)kvHeads * dim;

            var fwd = new double[reps];
            var bwd = new double[reps];
            var fwdCpu = new double[reps];
            var bwdCpu = new double[reps];
            using var self = Process.GetCurrentProcess();
            for (int r = -1; r < reps; r++)
            {
                self.Refresh();
                var c0 = self.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                Attention.Forward(shape, x, x + hd, x + hd + kvd, o.Floats, lse.Floats, ws.Floats, pool);
                long t1 = Stopwatch.GetTimestamp();
                self.Refresh();
                var c1 = self.TotalProcessorTime;
                Attention.Backward(shape, x, x + hd, x + hd + kvd, o.Floats, lse.Floats, dO.Floats, g, g + hd, g + hd + kvd, ws.Floats, pool);
                long t2 = Stopwatch.GetTimestamp();
                self.Refresh();
                var c2 = self.TotalProcessorTime;
                if (r < 0) continue; // warm-up
                fwd[r] = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
                bwd[r] = Stopwatch.GetElapsedTime(t1, t2).TotalSeconds;
                fwdCpu[r] = (c1 - c0).TotalSeconds;
                bwdCpu[r] = (c2 - c1).TotalSeconds;
            }
            double flopsFwd = 2.0 * 2.0 * batch * heads * (double)T * T * dim / 2;
            double f = Median(fwd), b = Median(bwd);
            Console.WriteLine($"{T,8} {f * 1e3,10:F2} {flopsFwd / f / 1e9,9:F1} {b * 1e3,10:F2} {2.5 * flopsFwd / b / 1e9,9:F1} {Median(fwdCpu) * 1e3,11:F2} {Median(bwdCpu) * 1e3,11:F2}");
        }
        return 0;
    }

    private static double Median(double[] a)
    {
        var s = a.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    private static string Arg(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
