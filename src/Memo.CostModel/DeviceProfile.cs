using System.Globalization;
using System.Runtime.Intrinsics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memo.CostModel;

/// <summary>
/// What the cost model knows about one kind of accelerator and the node it sits in. Units are SI:
/// bytes, bytes per second, FLOP per second. Hardware figures are vendor specifications; the
/// efficiency factors and effective link rates are assumptions (documented at each preset and in
/// docs/plan-vs-paper.md). Every field can be overridden by a flag, by a JSON profile file, or, on
/// the local backend, by measurement (<see cref="ILocalMeasure"/>).
/// </summary>
public sealed record DeviceProfile
{
    /// <summary>Short name used by --gpu: a800, h100, h200, cpu.</summary>
    public required string Name { get; init; }

    public required string Description { get; init; }

    /// <summary>Dense bf16 tensor-core peak, FLOP/s.</summary>
    public required double PeakBf16Flops { get; init; }

    /// <summary>fp32 peak (CUDA cores on GPUs, vector FMA on the CPU), FLOP/s.</summary>
    public required double PeakFp32Flops { get; init; }

    /// <summary>Device memory bandwidth (HBM; DRAM for the CPU), bytes/s.</summary>
    public required double MemoryBandwidth { get; init; }

    /// <summary>Device memory per GPU, bytes.</summary>
    public required long DeviceMemoryBytes { get; init; }

    /// <summary>Device memory that training cannot use: runtime context, communication buffers, library workspaces.</summary>
    public long ReservedBytes { get; init; }

    /// <summary>Host-device copy rate of one GPU alone, per direction, effective (not the link's signalling rate), bytes/s.</summary>
    public required double HostLinkBandwidth { get; init; }

    /// <summary>GPUs behind one host uplink (a PCIe switch): when all copy at once, each gets 1/this of it. The GPU presets' 2 is fitted to a paper figure (see the preset notes).</summary>
    public int GpusPerHostLink { get; init; } = 1;

    public required int GpusPerNode { get; init; }

    /// <summary>Host memory per node, bytes.</summary>
    public required long HostMemoryBytes { get; init; }

    /// <summary>Host memory per node kept for the OS, the framework and data loading; swapped activations get the rest.</summary>
    public long HostReservedBytes { get; init; }

    /// <summary>
    /// Disk (NVMe) per node behind host memory for memo's swapped activations that do not fit in host memory, bytes;
    /// null: no disk tier. No preset has one: give it with --disk-tier or the profile file's disk_* fields.
    /// </summary>
    public long? DiskCapacityBytes { get; init; }

    /// <summary>Disk read rate per node, all drives together, bytes/s (shared by the node's GPUs).</summary>
    public double? DiskReadBandwidth { get; init; }

    /// <summary>Disk write rate per node, all drives together, bytes/s (shared by the node's GPUs).</summary>
    public double? DiskWriteBandwidth { get; init; }

    /// <summary>True when the node has a disk tier (capacity and both rates given).</summary>
    public bool HasDiskTier => DiskCapacityBytes is > 0 && DiskReadBandwidth is > 0 && DiskWriteBandwidth is > 0;

    /// <summary>
    /// Per-GPU rate, one direction, of a swapped layer that lives on disk when <paramref name="gpusPerNode"/> GPUs copy at
    /// once: its bytes pass the host link and the disk, so the slower of the two (the disk shared by those GPUs).
    /// </summary>
    public double ConcurrentDiskBandwidth(int gpusPerNode, bool write) =>
        Math.Min(ConcurrentHostLinkBandwidth, (write ? DiskWriteBandwidth ?? 0 : DiskReadBandwidth ?? 0) / Math.Max(1, gpusPerNode));

    /// <summary>The profile without its disk tier (the plan the disk tier is compared against).</summary>
    public DeviceProfile WithoutDiskTier() => this with { DiskCapacityBytes = null, DiskReadBandwidth = null, DiskWriteBandwidth = null };

    /// <summary>True when device and host memory are one pool (the CPU backend).</summary>
    public bool SharedHostMemory { get; init; }

    /// <summary>
    /// True when the device is this machine's CPU running Memo's own engine: memory is then read off the engine's
    /// arena layout and step time follows its kernels (<see cref="ILocalEngine"/>, given as <see cref="PlanRequest.Engine"/>).
    /// Kept from the preset a profile file starts from.
    /// </summary>
    public bool CpuEngine { get; init; }

    /// <summary>Intra-node GPU-GPU bandwidth per GPU, both directions together (as NVLink is quoted), bytes/s.</summary>
    public required double IntraNodeBandwidth { get; init; }

    /// <summary>Inter-node network bandwidth per node, one direction, bytes/s.</summary>
    public required double InterNodeBandwidth { get; init; }

    /// <summary>Fraction of the link rate that collectives reach (NCCL bus bandwidth / link rate). Assumption.</summary>
    public double CollectiveEfficiency { get; init; } = 0.8;

    /// <summary>Fraction of peak that large GEMMs reach. Assumption.</summary>
    public required double GemmEfficiency { get; init; }

    /// <summary>Fraction of peak that fused causal attention forward reaches (FLOPs counted with the causal 1/2). Assumption.</summary>
    public required double AttentionForwardEfficiency { get; init; }

    /// <summary>Fraction of peak that fused attention backward reaches (its 2.5x forward FLOPs). Assumption.</summary>
    public required double AttentionBackwardEfficiency { get; init; }

    /// <summary>Name of the <see cref="CostModel.Precision"/> used on this device: bf16-mixed or fp32.</summary>
    public string Precision { get; init; } = "bf16-mixed";

    /// <summary>Fields filled by measurement on the local backend (printed, so readers know what is measured).</summary>
    public IReadOnlyList<string> Measured { get; init; } = [];

    public Precision Dtypes => CostModel.Precision.Parse(Precision);

    /// <summary>Peak of the dtype the matmuls run in.</summary>
    public double PeakFlops => Dtypes.ActivationBytes == 2 ? PeakBf16Flops : PeakFp32Flops;

    /// <summary>Per-GPU host copy rate, per direction, when every GPU of the node copies at once.</summary>
    public double ConcurrentHostLinkBandwidth => HostLinkBandwidth / Math.Max(1, GpusPerHostLink);

    /// <summary>Per-GPU, per-direction rate reached by a collective inside a node.</summary>
    public double IntraNodeCollectiveBandwidth => IntraNodeBandwidth / 2 * CollectiveEfficiency;

    /// <summary>Per-GPU, per-direction rate reached by a collective that crosses nodes.</summary>
    public double InterNodeCollectiveBandwidth => InterNodeBandwidth / GpusPerNode * CollectiveEfficiency;

    public long UsableDeviceBytes => DeviceMemoryBytes - ReservedBytes;

    public long UsableHostBytes => HostMemoryBytes - HostReservedBytes;

    private const long GiB = 1L << 30;
    private const long TiB = 1L << 40;

    // ---------------------------------------------------------------------------------------------
    // Presets. Shared assumptions, GPUs:
    //  * ReservedBytes 2 GiB: CUDA context (~0.5 GiB), NCCL communicator buffers, cuBLAS/attention workspaces.
    //  * HostReservedBytes 64 GiB per node: OS, framework, pinned staging and data loading.
    //  * GpusPerHostLink 2: FITTED to a paper figure. It was chosen because, with 25 GB/s per A800,
    //    it puts the point where a whole layer's copy hides behind its forward at about 192K tokens
    //    for the paper's 7B on 8 GPUs, where the paper reports it (with 1 the point is near 54K). HGX
    //    baseboards, where two GPUs share one PCIe switch uplink, make it plausible; it is not measured.
    //    Assumptions.For prints it as "fitted"; --sensitivity moves it to 1 and 4.
    //  * CollectiveEfficiency 0.8: NCCL all-gather/reduce-scatter bus bandwidth relative to the link.
    //  * GemmEfficiency / Attention*Efficiency: fractions of the dense bf16 peak. For A800 (an A100
    //    with reduced NVLink), 0.80 for large bf16 GEMMs (cuBLAS reaches 250-270 of 312 TFLOP/s), and
    //    FlashAttention-2's published A100 range (50-73% of peak; forward near the top, backward
    //    lower): 0.70 forward, 0.60 backward for causal attention with head dim 128 at long sequence.
    //    For H100/H200 the FlashAttention-3 level: 0.60 forward, 0.45 backward, GEMMs 0.70.
    // ---------------------------------------------------------------------------------------------

    /// <summary>NVIDIA A800-SXM4-80GB in an 8-GPU HGX server with 2 TiB of host memory (the paper's nodes).</summary>
    public static DeviceProfile A800 { get; } = new()
    {
        Name = "a800",
        Description = "NVIDIA A800-SXM4-80GB, 8 per node, PCIe Gen4, 400 GB/s NVLink, 4x200 Gb/s InfiniBand, 2 TiB host",
        PeakBf16Flops = 312e12,
        PeakFp32Flops = 19.5e12,
        MemoryBandwidth = 2.039e12,
        DeviceMemoryBytes = 80 * GiB,
        ReservedBytes = 2 * GiB,
        HostLinkBandwidth = 25e9, // PCIe Gen4 x16: 32 GB/s raw, ~25 GB/s reached by cudaMemcpyAsync from pinned memory
        GpusPerHostLink = 2,
        GpusPerNode = 8,
        HostMemoryBytes = 2 * TiB,
        HostReservedBytes = 64 * GiB,
        IntraNodeBandwidth = 400e9, // A800: 8 NVLink3 links (A100 has 12), 400 GB/s both directions
        InterNodeBandwidth = 100e9, // 4 x 200 Gb/s HDR InfiniBand per node
        GemmEfficiency = 0.80,
        AttentionForwardEfficiency = 0.70,
        AttentionBackwardEfficiency = 0.60,
    };

    /// <summary>NVIDIA H100 SXM5 80GB, 8 per node (DGX/HGX H100).</summary>
    public static DeviceProfile H100 { get; } = new()
    {
        Name = "h100",
        Description = "NVIDIA H100-SXM5-80GB, 8 per node, PCIe Gen5, 900 GB/s NVLink, 8x400 Gb/s InfiniBand, 2 TiB host",
        PeakBf16Flops = 989e12,
        PeakFp32Flops = 67e12,
        MemoryBandwidth = 3.35e12,
        DeviceMemoryBytes = 80 * GiB,
        ReservedBytes = 2 * GiB,
        HostLinkBandwidth = 50e9, // PCIe Gen5 x16: 64 GB/s raw
        GpusPerHostLink = 2,
        GpusPerNode = 8,
        HostMemoryBytes = 2 * TiB,
        HostReservedBytes = 64 * GiB,
        IntraNodeBandwidth = 900e9,
        InterNodeBandwidth = 400e9, // 8 x 400 Gb/s NDR, one NIC per GPU
        GemmEfficiency = 0.70,
        AttentionForwardEfficiency = 0.60,
        AttentionBackwardEfficiency = 0.45,
    };

    /// <summary>NVIDIA H200 SXM 141GB, 8 per node: H100 compute with more and faster memory.</summary>
    public static DeviceProfile H200 { get; } = H100 with
    {
        Name = "h200",
        Description = "NVIDIA H200-SXM-141GB, 8 per node, PCIe Gen5, 900 GB/s NVLink, 8x400 Gb/s InfiniBand, 2 TiB host",
        MemoryBandwidth = 4.8e12,
        DeviceMemoryBytes = 141_000_000_000,
    };

    /// <summary>
    /// The local CPU running Memo's own engine as the "device": device and host memory are one pool, copies
    /// are memcpy on one copy thread. Memory is read off the engine's arena layout; step time follows its
    /// kernels. Peak assumes two 512-bit (or 256-bit) FMA units per core at 3.5 GHz; the efficiencies and
    /// rates are assumed until measured with --measure, which times the engine's kernels at the planned shapes.
    /// </summary>
    public static DeviceProfile Cpu()
    {
        int cores = Environment.ProcessorCount;
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 4;
        double peak = cores * lanes * 2.0 /* FMA units */ * 2.0 /* FLOPs per FMA */ * 3.5e9;
        long ram = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        // Assumed rates: what the engine's kernels reach on one Zen 5 core with AVX-512 once warm (GEMM mix about 130 of
        // 224 GFLOP/s per core, causal attention about 110, memory-bound passes about 20 GB/s of traffic, one-thread
        // memcpy about 20 GB/s). --measure replaces all of them with this machine's figures at the planned shapes.
        return new DeviceProfile
        {
            Name = "cpu",
            Description = string.Create(CultureInfo.InvariantCulture, $"local CPU, {cores} cores, {lanes} fp32 lanes, memory shared with the host"),
            PeakBf16Flops = peak,
            PeakFp32Flops = peak,
            MemoryBandwidth = 20e9,
            DeviceMemoryBytes = ram,
            ReservedBytes = 0,
            HostLinkBandwidth = 20e9,
            GpusPerHostLink = 1,
            GpusPerNode = 1,
            HostMemoryBytes = ram,
            HostReservedBytes = ram / 10,
            SharedHostMemory = true,
            CpuEngine = true,
            // Rank to rank (mpiexec -n C memo train --cp C on this machine): MPICH's shared-memory transfer of one ring
            // block. Assumed about half a one-thread memcpy (a copy into and out of shared memory); MPICH 4.0.2 (ch4:ucx)
            // exchanged 1-2 MiB messages around a 2-rank ring at up to 12 GB/s on the 2-core Zen 5 machine, less under load.
            IntraNodeBandwidth = 10e9,
            InterNodeBandwidth = 0,
            GemmEfficiency = 0.6,
            AttentionForwardEfficiency = 0.5,
            AttentionBackwardEfficiency = 0.5,
            Precision = "fp32",
        };
    }

    public static IReadOnlyList<string> Names { get; } = ["a800", "h100", "h200", "cpu"];

    /// <summary>The preset called <paramref name="name"/> (case-insensitive; "A800-80G", "h100-80g" and the like are accepted).</summary>
    public static DeviceProfile Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string n = name.Trim().ToLowerInvariant();
        int dash = n.IndexOf('-', StringComparison.Ordinal);
        string head = dash > 0 ? n[..dash] : n;
        return head switch
        {
            "a800" => A800,
            "h100" => H100,
            "h200" => H200,
            "cpu" => Cpu(),
            _ => throw new MemoException($"unknown GPU '{Sizes.Printable(name)}'; use one of {string.Join(", ", Names)} (or --device-profile FILE.json)"),
        };
    }

    // ---------------------------------------------------------------------------------------------
    // JSON: the same field table drives reading overrides, writing the profile, and the docs.
    // ---------------------------------------------------------------------------------------------

    private sealed record Field(string Key, string Unit, Func<DeviceProfile, JsonNode?> Get, Func<DeviceProfile, JsonNode, string, DeviceProfile> Set);

    private static readonly Field[] Fields =
    [
        new("name", "", p => p.Name, (p, v, s) => p with { Name = Str(v, s, "name") }),
        new("description", "", p => p.Description, (p, v, s) => p with { Description = Str(v, s, "description") }),
        new("peak_bf16_flops", "FLOP/s", p => p.PeakBf16Flops, (p, v, s) => p with { PeakBf16Flops = Pos(v, s, "peak_bf16_flops") }),
        new("peak_fp32_flops", "FLOP/s", p => p.PeakFp32Flops, (p, v, s) => p with { PeakFp32Flops = Pos(v, s, "peak_fp32_flops") }),
        new("memory_bandwidth", "B/s", p => p.MemoryBandwidth, (p, v, s) => p with { MemoryBandwidth = Pos(v, s, "memory_bandwidth") }),
        new("device_memory_bytes", "B", p => p.DeviceMemoryBytes, (p, v, s) => p with { DeviceMemoryBytes = Bytes(v, s, "device_memory_bytes") }),
        new("reserved_bytes", "B", p => p.ReservedBytes, (p, v, s) => p with { ReservedBytes = Bytes(v, s, "reserved_bytes", allowZero: true) }),
        new("host_link_bandwidth", "B/s", p => p.HostLinkBandwidth, (p, v, s) => p with { HostLinkBandwidth = Pos(v, s, "host_link_bandwidth") }),
        new("gpus_per_host_link", "", p => p.GpusPerHostLink, (p, v, s) => p with { GpusPerHostLink = PosInt(v, s, "gpus_per_host_link") }),
        new("gpus_per_node", "", p => p.GpusPerNode, (p, v, s) => p with { GpusPerNode = PosInt(v, s, "gpus_per_node") }),
        new("host_memory_bytes", "B", p => p.HostMemoryBytes, (p, v, s) => p with { HostMemoryBytes = Bytes(v, s, "host_memory_bytes") }),
        new("host_reserved_bytes", "B", p => p.HostReservedBytes, (p, v, s) => p with { HostReservedBytes = Bytes(v, s, "host_reserved_bytes", allowZero: true) }),
        new("shared_host_memory", "", p => p.SharedHostMemory, (p, v, s) => p with { SharedHostMemory = Bool(v, s, "shared_host_memory") }),
        new("intra_node_bandwidth", "B/s", p => p.IntraNodeBandwidth, (p, v, s) => p with { IntraNodeBandwidth = NonNeg(v, s, "intra_node_bandwidth") }),
        new("inter_node_bandwidth", "B/s", p => p.InterNodeBandwidth, (p, v, s) => p with { InterNodeBandwidth = NonNeg(v, s, "inter_node_bandwidth") }),
        new("collective_efficiency", "", p => p.CollectiveEfficiency, (p, v, s) => p with { CollectiveEfficiency = Fraction(v, s, "collective_efficiency") }),
        new("gemm_efficiency", "", p => p.GemmEfficiency, (p, v, s) => p with { GemmEfficiency = Fraction(v, s, "gemm_efficiency") }),
        new("attention_forward_efficiency", "", p => p.AttentionForwardEfficiency, (p, v, s) => p with { AttentionForwardEfficiency = Fraction(v, s, "attention_forward_efficiency") }),
        new("attention_backward_efficiency", "", p => p.AttentionBackwardEfficiency, (p, v, s) => p with { AttentionBackwardEfficiency = Fraction(v, s, "attention_backward_efficiency") }),
        new("disk_capacity_bytes", "B", p => p.DiskCapacityBytes, (p, v, s) => p with { DiskCapacityBytes = Bytes(v, s, "disk_capacity_bytes") }),
        new("disk_read_bandwidth", "B/s", p => p.DiskReadBandwidth, (p, v, s) => p with { DiskReadBandwidth = Pos(v, s, "disk_read_bandwidth") }),
        new("disk_write_bandwidth", "B/s", p => p.DiskWriteBandwidth, (p, v, s) => p with { DiskWriteBandwidth = Pos(v, s, "disk_write_bandwidth") }),
        new("precision", "", p => p.Precision, (p, v, s) => p with { Precision = CostModel.Precision.Parse(Str(v, s, "precision")).Name }),
    ];

    /// <summary>The profile as a JSON object with the keys a profile file uses.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var f in Fields)
        {
            // Optional fields (the disk tier) are left out when absent, so a profile file can be read back.
            if (f.Get(this) is { } v) o[f.Key] = v;
        }
        if (Measured.Count > 0) o["measured"] = new JsonArray(Measured.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray());
        return o;
    }

    /// <summary>
    /// Applies a profile file: a JSON object with any of the keys of <see cref="ToJson"/>, and optionally
    /// "base" naming the preset to start from (otherwise <paramref name="start"/>). Unknown keys are errors.
    /// </summary>
    public static DeviceProfile FromJson(string json, string source, DeviceProfile start)
    {
        ArgumentNullException.ThrowIfNull(start);
        JsonNode? root;
        try
        {
            // Duplicate fields are an error (which of two values would count?), not a silent choice.
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new MemoException($"{source}: not valid JSON ({Sizes.Printable(e.Message.Split('\n')[0], 160)}); fix the profile file");
        }
        if (root is not JsonObject o)
            throw new MemoException($"{source}: expected a JSON object with profile fields such as \"peak_bf16_flops\"");
        var p = start;
        if (o["base"] is JsonNode b) p = Resolve(Str(b, source, "base"));
        foreach (var (key, value) in o)
        {
            if (key is "base" or "measured") continue;
            var f = Array.Find(Fields, x => x.Key == key)
                ?? throw new MemoException($"{source}: unknown profile field '{Sizes.Printable(key)}'; known fields: {string.Join(", ", Fields.Select(x => x.Key))}");
            if (value is null) throw new MemoException($"{source}: field '{Sizes.Printable(key)}' is null; give a value or leave it out");
            p = f.Set(p, value, source);
        }
        return p.Validate(source);
    }

    /// <summary>Throws a <see cref="MemoException"/> naming the first inconsistent field.</summary>
    public DeviceProfile Validate(string source = "profile")
    {
        if (ReservedBytes >= DeviceMemoryBytes)
            throw new MemoException($"{source}: reserved_bytes ({Sizes.FormatBytes(ReservedBytes)}) leaves no device memory of {Sizes.FormatBytes(DeviceMemoryBytes)}");
        if (HostReservedBytes >= HostMemoryBytes)
            throw new MemoException($"{source}: host_reserved_bytes ({Sizes.FormatBytes(HostReservedBytes)}) leaves no host memory of {Sizes.FormatBytes(HostMemoryBytes)}");
        bool anyDisk = DiskCapacityBytes is not null || DiskReadBandwidth is not null || DiskWriteBandwidth is not null;
        if (anyDisk && !HasDiskTier)
        {
            var missing = new[] { ("disk_capacity_bytes", DiskCapacityBytes is null), ("disk_read_bandwidth", DiskReadBandwidth is null), ("disk_write_bandwidth", DiskWriteBandwidth is null) }
                .Where(x => x.Item2).Select(x => x.Item1);
            throw new MemoException($"{source}: a disk tier needs disk_capacity_bytes, disk_read_bandwidth and disk_write_bandwidth together; missing {string.Join(", ", missing)}");
        }
        if (anyDisk && CpuEngine)
            throw new MemoException($"{source}: '{Name}' is this machine's CPU engine, whose disk tier memo train measures itself (--host-store disk); a disk tier in the plan is for GPU profiles");
        return this;
    }

    /// <summary>
    /// The profile with the disk tier of <paramref name="spec"/>: CAPACITY@BANDWIDTH (one rate for reads and writes) or
    /// CAPACITY@READ,WRITE, per node, e.g. "30TB@25GB/s" or "30TB@25GB/s,12GB/s"; "none" drops the profile's disk tier.
    /// </summary>
    public DeviceProfile WithDiskTier(string spec, string flag = "--disk-tier")
    {
        ArgumentNullException.ThrowIfNull(spec);
        string text = spec.Trim();
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase)) return WithoutDiskTier();
        string usage = $"{flag} '{Sizes.Printable(spec)}': write CAPACITY@BANDWIDTH per node, e.g. 30TB@25GB/s, or CAPACITY@READ,WRITE such as 30TB@25GB/s,12GB/s (or none)";
        int at = text.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0 || at == text.Length - 1) throw new MemoException(usage);
        if (!Sizes.TryParseBytes(text[..at], out long capacity)) throw new MemoException($"{usage}; '{Sizes.Printable(text[..at])}' is not a size");
        if (capacity <= 0) throw new MemoException($"{flag}: the capacity must be larger than 0 (got '{Sizes.Printable(text[..at])}')");
        var rates = text[(at + 1)..].Split(',', StringSplitOptions.TrimEntries);
        if (rates.Length > 2) throw new MemoException(usage);
        double Rate(string r)
        {
            string b = r.EndsWith("/s", StringComparison.OrdinalIgnoreCase) ? r[..^2] : r;
            if (!Sizes.TryParseBytes(b, out long bytes)) throw new MemoException($"{usage}; '{Sizes.Printable(r)}' is not a rate");
            return bytes > 0 ? bytes : throw new MemoException($"{flag}: a disk bandwidth must be larger than 0 (got '{Sizes.Printable(r)}')");
        }
        double read = Rate(rates[0]);
        double write = rates.Length == 2 ? Rate(rates[1]) : read;
        return this with { DiskCapacityBytes = capacity, DiskReadBandwidth = read, DiskWriteBandwidth = write };
    }

    private static string Str(JsonNode v, string source, string key) =>
        v is JsonValue jv && jv.TryGetValue<string>(out var s) && s.Length > 0 ? s
            : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be a non-empty string (got {Sizes.Printable(v.ToJsonString())})");

    private static double Num(JsonNode v, string source, string key) =>
        v is JsonValue jv && jv.TryGetValue<double>(out var d) && double.IsFinite(d) ? d
            : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be a number (got {Sizes.Printable(v.ToJsonString())})");

    private static double Pos(JsonNode v, string source, string key)
    {
        double d = Num(v, source, key);
        return d > 0 ? d : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be positive (got {d.ToString(CultureInfo.InvariantCulture)})");
    }

    private static double NonNeg(JsonNode v, string source, string key)
    {
        double d = Num(v, source, key);
        return d >= 0 ? d : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must not be negative (got {d.ToString(CultureInfo.InvariantCulture)})");
    }

    private static double Fraction(JsonNode v, string source, string key)
    {
        double d = Num(v, source, key);
        return d is > 0 and <= 1 ? d : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' is a fraction of peak and must be in (0, 1] (got {d.ToString(CultureInfo.InvariantCulture)})");
    }

    private static int PosInt(JsonNode v, string source, string key)
    {
        double d = Num(v, source, key);
        return d >= 1 && d <= 1 << 20 && d == Math.Floor(d) ? (int)d
            : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be a positive integer (got {Sizes.Printable(v.ToJsonString())})");
    }

    private static long Bytes(JsonNode v, string source, string key, bool allowZero = false)
    {
        long b;
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s))
            b = Sizes.TryParseBytes(s, out var parsed) ? parsed : throw new MemoException($"{source}: field '{Sizes.Printable(key)}': '{Sizes.Printable(s)}' is not a size; use bytes or a unit such as 80GiB or 2TiB");
        else
        {
            double d = Num(v, source, key);
            b = d >= 0 && d < long.MaxValue / 2 && d == Math.Floor(d) ? (long)d : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be a whole number of bytes (got {Sizes.Printable(v.ToJsonString())})");
        }
        if (b < 0 || (b == 0 && !allowZero)) throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be positive (got {b})");
        return b;
    }

    private static bool Bool(JsonNode v, string source, string key) =>
        v is JsonValue jv && jv.TryGetValue<bool>(out var b) ? b
            : throw new MemoException($"{source}: field '{Sizes.Printable(key)}' must be true or false (got {Sizes.Printable(v.ToJsonString())})");
}
