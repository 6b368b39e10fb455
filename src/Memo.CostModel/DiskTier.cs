using System.Globalization;
using System.Text.Json.Nodes;

namespace Memo.CostModel;

/// <summary>
/// What a node's disk tier changes in memo's plan: the same request planned with the disk tier and without it
/// (<see cref="DeviceProfile.WithoutDiskTier"/>), at one length (alpha, fit, step time) or over the --max-seq search
/// (the longest sequence). Only memo swaps to disk; the baselines' plans do not depend on it.
/// </summary>
public sealed record DiskTierEffect
{
    /// <summary>Memo's plan without the disk tier.</summary>
    public required StrategyPlan Without { get; init; }

    /// <summary>Memo's plan with it.</summary>
    public required StrategyPlan With { get; init; }

    /// <summary>--max-seq: the longest sequence without and with the disk tier (null for a plan at one length).</summary>
    public long? MaxSeqWithout { get; init; }

    public long? MaxSeqWith { get; init; }

    /// <summary>True when the plan keeps some swapped bytes on disk.</summary>
    public bool UsesDisk => With.DiskBytesPerNode > 0;

    /// <summary>True when the disk tier changes alpha or whether memo fits.</summary>
    public bool ChangesAlpha => UsesDisk && (With.Fits != Without.Fits || Math.Abs((With.Alpha ?? 0) - (Without.Alpha ?? 0)) >= 0.0005);

    /// <summary>True when the disk tier changes the longest sequence.</summary>
    public bool ChangesMaxSeq => MaxSeqWith is long a && MaxSeqWithout is long b && a != b;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string Alpha(StrategyPlan p) => p.Fits && p.Alpha is double a ? a.ToString("0.000", Inv) : "none (does not fit)";

    /// <summary>One line for the table's notes, e.g. "disk tier: alpha 0.410 -> 0.780, ...".</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (MaxSeqWith is long with && MaxSeqWithout is long without)
        {
            parts.Add(with == without
                ? $"longest sequence {Sizes.FormatCount(with)} with or without it"
                : $"longest sequence {(without > 0 ? Sizes.FormatCount(without) : "none")} -> {Sizes.FormatCount(with)}");
        }
        if (Without.Seq != With.Seq)
        {
            // --max-seq with different longest sequences: each plan at its own length (step times are not comparable).
            parts.Add($"alpha {Alpha(Without)} at {Sizes.FormatCount(Without.Seq)} without it, {Alpha(With)} at {Sizes.FormatCount(With.Seq)} with it");
        }
        else if (ChangesAlpha)
        {
            string at = MaxSeqWith is null ? "alpha" : "alpha at the longest";
            parts.Add($"{at} {Alpha(Without)} -> {Alpha(With)}");
            if (With.StepSeconds is double s1)
                parts.Add(Without.StepSeconds is double s0 ? string.Create(Inv, $"step {s0:0.00} s -> {s1:0.00} s") : string.Create(Inv, $"step {s1:0.00} s"));
        }
        if (UsesDisk)
        {
            int swapped = MemoryPolicy.SwappedLayers(With.LayersPerStage);
            parts.Add($"{Sizes.FormatBytes(With.DiskBytesPerNode)} per node on disk ({With.Memory?.DiskLayers ?? 0} of {swapped} swapped layers), {Sizes.FormatBytes(With.HostBytesPerNode)} in host RAM");
        }
        else if (MaxSeqWith is null || !ChangesMaxSeq)
        {
            parts.Add(Without.Fits
                ? "not used: host RAM alone gives the same or a larger alpha"
                : "not used: memo does not fit with it either");
        }
        return "disk tier: " + string.Join(", ", parts);
    }

    public JsonObject ToJson()
    {
        static JsonObject Side(StrategyPlan p) => new()
        {
            ["fits"] = p.Fits,
            ["alpha"] = p.Fits ? p.Alpha : null,
            ["step_seconds"] = p.StepSeconds,
            ["seq"] = p.Seq,
            ["host_bytes_per_node"] = p.HostBytesPerNode,
            ["disk_bytes_per_node"] = p.DiskBytesPerNode,
        };
        var o = new JsonObject
        {
            ["uses_disk"] = UsesDisk,
            ["changes_alpha"] = ChangesAlpha,
        };
        if (MaxSeqWith is not null)
        {
            o["changes_max_seq"] = ChangesMaxSeq;
            o["max_seq_without"] = MaxSeqWithout;
            o["max_seq_with"] = MaxSeqWith;
        }
        o["without"] = Side(Without);
        o["with"] = Side(With);
        o["note"] = Describe();
        return o;
    }
}

/// <summary>Plans memo with and without the disk tier of the request's profile.</summary>
public static class DiskTier
{
    /// <summary>The effect at the request's length, given memo's plan with the disk tier; null when the profile has none.</summary>
    public static DiskTierEffect? Compare(PlanRequest r, StrategyPlan withDisk)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(withDisk);
        if (!r.Device.HasDiskTier || withDisk.Strategy != Strategy.Memo) return null;
        var without = StrategySearch.Plan(r with { Device = r.Device.WithoutDiskTier() }, Strategy.Memo);
        return new DiskTierEffect { Without = without, With = withDisk };
    }

    /// <summary>The effect on the longest sequence, given memo's --max-seq result with the disk tier; null when the profile has none.</summary>
    public static DiskTierEffect? CompareMaxSeq(PlanRequest r, long maxSeqWith, StrategyPlan withDisk)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(withDisk);
        if (!r.Device.HasDiskTier) return null;
        var (maxWithout, planWithout) = StrategySearch.MaxSeq(r with { Device = r.Device.WithoutDiskTier() }, Strategy.Memo);
        // Alpha compared at the longest sequence with the disk tier; when RAM alone cannot reach it, at its own longest.
        var at = maxWithout >= maxSeqWith && maxSeqWith > 0 ? StrategySearch.Plan(r with { Device = r.Device.WithoutDiskTier(), Seq = maxSeqWith }, Strategy.Memo) : planWithout;
        return new DiskTierEffect { Without = at, With = withDisk, MaxSeqWithout = maxWithout, MaxSeqWith = maxSeqWith };
    }
}
