using Memo.Backends;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Memo;
using Memo.Cpu;
using Memo.Cpu.Kernels;
using Memo.Distributed;

// Causal attention of llama-small (4 layers; 4 query heads of dimension 32 over 2 kv heads) at long
// sequence: one process with 2 threads (the single-process kernels) against 2 MPI ranks with 1 thread each
// (ring attention over a zig-zag split). Forward and backward of every layer per repetition.
//
//   run --seq T [--reps R] [--threads t]          one measurement (under mpiexec: the ring); prints one JSON line
//   driver --seqs 8192,16384,32768 [--pairs P] [--reps R] --out FILE.md
//                                                 interleaves single and ring runs (A B A B ...) and writes medians
try
{
    if (args.Length > 0 && args[0] == "run") return Measure.Run(Options(args[1..]));
    if (args.Length > 0 && args[0] == "driver") return Driver.Run(Options(args[1..]));
    Console.Error.WriteLine("usage: Memo.Distributed.Bench run --seq T [--reps R] [--threads t] | driver --seqs T1,T2 [--pairs P] --out FILE.md");
    return 2;
}
catch (MemoException e)
{
    Console.Error.WriteLine($"memo: {e.Message}");
    return e.ExitCode;
}
catch (CommunicatorException e)
{
    Console.Error.WriteLine($"memo: {e.Message}");
    return CommunicatorException.PeerFailedExitCode;
}

static Dictionary<string, string> Options(string[] a)
{
    var d = new Dictionary<string, string>();
    for (int i = 0; i + 1 < a.Length; i += 2)
    {
        if (!a[i].StartsWith("--", StringComparison.Ordinal)) throw new MemoException($"expected an option, got '{a[i]}'");
        d[a[i][2..]] = a[i + 1];
    }
    return d;
}

/// <summary>One measured configuration: median seconds per repetition and what the ring reported.</summary>
internal sealed record Sample(string Mode, long Seq, int Ranks, int Threads, double Seconds, long BytesSent, long PredictedBytes,
    double WaitSeconds, double TransferAloneSeconds, long BufferBytes, double TransferSeconds = 0, double ExposedSeconds = 0);

internal static unsafe class Measure
{
    // llama-small's attention: hidden 128, 4 heads of 32 over 2 kv heads, 4 layers, batch 1.
    public const int Layers = 4, Heads = 4, KvHeads = 2, HeadDim = 32;

    public static int Run(Dictionary<string, string> o)
    {
        long seq = long.Parse(o["seq"], CultureInfo.InvariantCulture);
        int reps = o.TryGetValue("reps", out var r) ? int.Parse(r, CultureInfo.InvariantCulture) : 3;
        int threads = o.TryGetValue("threads", out var t) ? int.Parse(t, CultureInfo.InvariantCulture) : 1;
        using var world = MpiCommunicator.LaunchedByMpi ? MpiCommunicator.World(TimeSpan.FromMinutes(5)) : LocalGroup.Single();
        var s = world.Size == 1 ? Single(seq, reps, threads) : Ring(world, seq, reps, threads);
        if (world.Rank == 0) Console.WriteLine(JsonSerializer.Serialize(s));
        return 0;
    }

    private static Sample Single(long seq, int reps, int threads)
    {
        using var pool = new WorkerPool(threads);
        long qStride = (long)(Heads + 2 * KvHeads) * HeadDim, oStride = (long)Heads * HeadDim;
        long kOff = (long)Heads * HeadDim, vOff = kOff + (long)KvHeads * HeadDim;
        // Per layer: q|k|v, o, lse (kept for backward), then dO, dq|dk|dv and the workspace, shared.
        long perLayer = seq * (qStride + oStride + Heads);
        long shared = seq * (oStride + qStride) + Attention.WorkspaceFloats(threads, HeadDim);
        long total = Layers * perLayer + shared;
        float* mem = Alloc(total);
        float* dO = mem + Layers * perLayer, dqkv = dO + seq * oStride, work = dqkv + seq * qStride;
        var shape = new AttentionShape(1, seq, Heads, KvHeads, HeadDim, qStride, qStride, oStride, 1 / MathF.Sqrt(HeadDim));
        var times = new List<double>();
        for (int rep = 0; rep <= reps; rep++)
        {
            var sw = Stopwatch.StartNew();
            for (int l = 0; l < Layers; l++)
            {
                float* q = mem + l * perLayer, o = q + seq * qStride, lse = o + seq * oStride;
                Attention.Forward(shape, q, q + kOff, q + vOff, o, lse, work, pool);
            }
            for (int l = Layers - 1; l >= 0; l--)
            {
                float* q = mem + l * perLayer, o = q + seq * qStride, lse = o + seq * oStride;
                Attention.Backward(shape, q, q + kOff, q + vOff, o, lse, dO, dqkv, dqkv + kOff, dqkv + vOff, work, pool);
            }
            if (rep > 0) times.Add(sw.Elapsed.TotalSeconds); // repetition 0 warms up the JIT
        }
        NativeMemory.AlignedFree(mem);
        return new Sample("single", seq, 1, threads, Median(times), 0, 0, 0, 0, total * sizeof(float));
    }

    private static Sample Ring(ICommunicator world, long seq, int reps, int threads)
    {
        using var pool = new WorkerPool(threads);
        var zz = ZigZag.Create(seq, world.Size);
        long local = zz.LocalLen;
        long qStride = (long)(Heads + 2 * KvHeads) * HeadDim, oStride = (long)Heads * HeadDim;
        long kOff = (long)Heads * HeadDim, vOff = kOff + (long)KvHeads * HeadDim;
        var shape = new RingShape(1, zz.Chunk, Heads, KvHeads, HeadDim, 1 / MathF.Sqrt(HeadDim));
        var ring = new RingAttention(world, shape, pool);
        long perLayer = local * (qStride + oStride + Heads);
        long shared = local * (oStride + qStride) + RingAttention.WorkspaceFloats(shape, threads);
        long total = Layers * perLayer + shared;
        float* mem = Alloc(total);
        float* dO = mem + Layers * perLayer, dqkv = dO + local * oStride, work = dqkv + local * qStride;
        var times = new List<double>();
        var waits = new List<double>();
        var transfers = new List<double>();
        var exposed = new List<double>();
        long sent = 0;
        for (int rep = 0; rep <= reps; rep++)
        {
            world.Barrier();
            ring.ResetStats();
            long before = world.Counters.SendBytes;
            var sw = Stopwatch.StartNew();
            for (int l = 0; l < Layers; l++)
            {
                float* q = mem + l * perLayer, o = q + local * qStride, lse = o + local * oStride;
                ring.Forward(q, qStride, q + kOff, q + vOff, qStride, o, oStride, lse, work);
            }
            for (int l = Layers - 1; l >= 0; l--)
            {
                float* q = mem + l * perLayer, o = q + local * qStride, lse = o + local * oStride;
                ring.Backward(q, qStride, q + kOff, q + vOff, qStride, o, oStride, lse, dO, dqkv, dqkv + kOff, dqkv + vOff, work);
            }
            double mine = sw.Elapsed.TotalSeconds;
            double slowest = mine;
            world.AllReduce(&slowest, &slowest, 1, CommType.Float64, CommOp.Max);
            if (rep > 0)
            {
                times.Add(slowest);
                waits.Add(ring.Stats.WaitSeconds);
                transfers.Add(ring.Stats.TransferSeconds);
                exposed.Add(ring.Stats.ExposedSeconds);
                sent = world.Counters.SendBytes - before;
            }
        }
        // The same transfers with no compute to hide them: what the ring's communication costs alone.
        var alone = new List<double>();
        for (int rep = 0; rep < reps; rep++)
        {
            world.Barrier();
            var sw = Stopwatch.StartNew();
            int blocks = Layers * (3 * world.Size - 2);
            float* a = work, b = work + shape.KvFloats;
            for (int i = 0; i < blocks; i++)
            {
                var rq = world.Receive(b, shape.KvFloats, CommType.Float32, (world.Rank - 1 + world.Size) % world.Size, 9);
                var sq = world.Send(a, shape.KvFloats, CommType.Float32, (world.Rank + 1) % world.Size, 9);
                world.Wait(rq);
                world.Wait(sq);
            }
            alone.Add(sw.Elapsed.TotalSeconds);
        }
        NativeMemory.AlignedFree(mem);
        return new Sample("ring", seq, world.Size, threads, Median(times), sent, Layers * RingAttention.BytesPerLayer(shape, world.Size),
            Median(waits), Median(alone), total * sizeof(float), Median(transfers), Median(exposed));
    }

    private static float* Alloc(long floats)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        var rng = new Random(1);
        for (long i = 0; i < floats; i++) p[i] = (float)(rng.NextDouble() * 2 - 1);
        return p;
    }

    public static double Median(List<double> x)
    {
        if (x.Count == 0) return double.NaN;
        var s = x.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}

internal static class Driver
{
    public static int Run(Dictionary<string, string> o)
    {
        var seqs = o["seqs"].Split(',').Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        int pairs = o.TryGetValue("pairs", out var p) ? int.Parse(p, CultureInfo.InvariantCulture) : 3;
        string reps = o.TryGetValue("reps", out var rv) ? rv : "3";
        string outFile = o["out"];
        string dll = typeof(Measure).Assembly.Location;
        var sb = new StringBuilder();
        string loadBefore = File.ReadAllText("/proc/loadavg").Trim();
        var rows = new List<string>();
        foreach (long seq in seqs)
        {
            var a = new List<Sample>();
            var b = new List<Sample>();
            for (int i = 0; i < pairs; i++) // A B A B: the load of the shared machine hits both alike
            {
                a.Add(Launch(false, "dotnet", dll, "run", "--seq", seq.ToString(CultureInfo.InvariantCulture), "--threads", "2", "--reps", reps));
                b.Add(Launch(true, "dotnet", dll, "run", "--seq", seq.ToString(CultureInfo.InvariantCulture), "--threads", "1", "--reps", reps));
                Console.Error.WriteLine($"T={seq} pair {i + 1}: single {a[^1].Seconds:0.000} s, ring {b[^1].Seconds:0.000} s");
            }
            rows.Add(Row(seq, a, b));
        }
        string loadAfter = File.ReadAllText("/proc/loadavg").Trim();
        sb.AppendLine("# Ring attention: one process (2 threads) vs 2 MPI ranks (1 thread each)");
        sb.AppendLine();
        sb.AppendLine($"llama-small attention ({Measure.Layers} layers, {Measure.Heads} query heads over {Measure.KvHeads} kv heads, head dim {Measure.HeadDim}, batch 1): forward of every layer then backward of every layer, per repetition; {reps} timed repetition(s) per run after one warm-up, the run's median; {pairs} runs of each, interleaved A B A B; the table gives the median over runs and [min, max].");
        sb.AppendLine($"The machine was shared with other work: load average before `{loadBefore}`, after `{loadAfter}` (/proc/loadavg). MPICH {Mpich()} (ch4:ucx), `mpiexec -n 2`.");
        sb.AppendLine("Bytes sent: counted by the communicator on rank 0 per repetition; predicted: (3C - 2) key/value blocks of a rank per layer (RingAttention.BytesPerLayer). Exposed wait: the ring's waits after its compute; alone: the same transfers with no compute. Transfer: rank 0's sum over the ring's hops of post to completion (as the communicator's progress thread first saw it); exposed: the part of each hop after the compute it overlapped had ended; hidden = 1 - exposed/transfer. Buffers: bytes this process allocated for q/k/v, o, lse of every layer, the backward's dO and dq/dk/dv, and the kernel (and ring) scratch.");
        sb.AppendLine();
        sb.AppendLine("| T | single 2 thr (s) | ring 2x1 thr (s) | ring / single | bytes sent | predicted | exposed wait (s) | transfer alone (s) | transfer (s) | exposed (s) | hidden | buffers single | buffers per rank | per rank / single |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows) sb.AppendLine(r);
        sb.AppendLine();
        sb.AppendLine($"Command: `dotnet artifacts/ring-bench/Memo.Distributed.Bench.dll driver --seqs {o["seqs"]} --pairs {pairs} --reps {reps} --out {outFile}` (bench/ring-attention.sh).");
        File.WriteAllText(outFile, sb.ToString());
        Console.Write(sb.ToString());
        return 0;
    }

    private static string Row(long seq, List<Sample> a, List<Sample> b)
    {
        var inv = CultureInfo.InvariantCulture;
        double ma = Measure.Median(a.Select(x => x.Seconds).ToList()), mb = Measure.Median(b.Select(x => x.Seconds).ToList());
        double wait = Measure.Median(b.Select(x => x.WaitSeconds).ToList()), alone = Measure.Median(b.Select(x => x.TransferAloneSeconds).ToList());
        double transfer = Measure.Median(b.Select(x => x.TransferSeconds).ToList()), exposed = Measure.Median(b.Select(x => x.ExposedSeconds).ToList());
        double hidden = transfer <= 0 ? double.NaN : 1 - exposed / transfer;
        var s = b[0];
        string Spread(List<Sample> x) => string.Create(inv, $"[{x.Min(y => y.Seconds):0.000}, {x.Max(y => y.Seconds):0.000}]");
        return string.Create(inv,
            $"| {seq} | {ma:0.000} {Spread(a)} | {mb:0.000} {Spread(b)} | {mb / ma:0.00} | {s.BytesSent} | {s.PredictedBytes} | {wait:0.000} | {alone:0.000} | {transfer:0.000} | {exposed:0.000} | {hidden:P0} | {a[0].BufferBytes} | {s.BufferBytes} | {(double)s.BufferBytes / a[0].BufferBytes:0.00} |");
    }

    private static Sample Launch(bool mpi, params string[] args)
    {
        var psi = new ProcessStartInfo(mpi ? "mpiexec" : args[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (mpi)
        {
            psi.ArgumentList.Add("-n");
            psi.ArgumentList.Add("2");
            foreach (var x in args) psi.ArgumentList.Add(x);
        }
        else
        {
            foreach (var x in args[1..]) psi.ArgumentList.Add(x);
        }
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string outText = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new MemoException($"benchmark run failed (exit {p.ExitCode}): {err.Result.Trim()}");
        string line = outText.Split('\n').First(l => l.StartsWith('{'));
        return JsonSerializer.Deserialize<Sample>(line)!;
    }

    private static string Mpich()
    {
        try
        {
            var psi = new ProcessStartInfo("mpichversion") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            string first = p.StandardOutput.ReadLine() ?? "";
            p.WaitForExit();
            return first.Split(':').Last().Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "(version unknown)";
        }
    }
}
