using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memo.CostModel;

/// <summary>JSON forms of plans (snake_case keys; bytes as integers, times in seconds, MFU as a fraction).</summary>
public static class PlanJson
{
    public static JsonSerializerOptions Indented { get; } = new() { WriteIndented = true };

    public static JsonObject Request(PlanRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var o = new JsonObject
        {
            ["model"] = r.Model.Name,
            ["parameters"] = MemoryModel.Parameters(r.Model, learnedPositionTable: false),
            ["seq"] = r.Seq,
            ["batch"] = r.Batch,
            ["gpus"] = r.Gpus,
            ["nodes"] = r.Nodes,
            ["gpu"] = r.Device.Name,
            ["precision"] = r.Device.Precision,
            ["profile"] = r.Device.ToJson(),
        };
        if (r.Device.CpuEngine) o["threads"] = r.EngineThreads;
        return o;
    }

    public static JsonObject Plan(StrategyPlan p)
    {
        ArgumentNullException.ThrowIfNull(p);
        var o = new JsonObject
        {
            ["strategy"] = StrategyPlan.StrategyName(p.Strategy),
            ["fits"] = p.Fits,
            ["reason"] = p.Reason,
            ["seq"] = p.Seq,
            ["device_peak_bytes"] = p.DevicePeakBytes,
            ["device_capacity_bytes"] = p.DeviceCapacityBytes,
            ["host_bytes_per_node"] = p.HostBytesPerNode,
            ["host_capacity_bytes_per_node"] = p.HostCapacityBytesPerNode,
            ["alpha"] = p.Alpha,
            ["alpha_per_layer"] = p.Policy?.Alphas is { } a && p.Policy.Kind is PolicyKind.Memo or PolicyKind.Swap
                ? new JsonArray(a.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()) : null,
            ["tp"] = p.Layout?.Tp,
            ["cp"] = p.Layout?.Cp,
            ["dp"] = p.Layout?.Dp,
            ["sequence_sharding"] = p.Layout is { } l ? (l.Sharding == SequenceSharding.Ulysses ? "ulysses" : "tensor-sequence") : null,
            ["zero_stage"] = p.Layout?.ZeroStage,
            ["policy"] = p.PolicyDescription,
            ["recomputed_layers"] = p.Policy?.Kind == PolicyKind.Recompute ? p.Policy.RecomputedLayers : 0,
            ["step_seconds"] = p.StepSeconds,
            ["tokens_per_s"] = p.TokensPerSecond,
            ["mfu"] = p.Mfu,
            ["model_flops"] = p.ModelFlops,
        };
        if (p.Memory is { } m)
        {
            var b = new JsonObject();
            foreach (var (key, _, bytes) in m.Parts) b[key] = bytes;
            b["peak_phase"] = m.PeakPhase;
            b["layer_saved_bytes"] = m.LayerSavedBytes;
            b["layer_skeleton_bytes"] = m.LayerSkeletonBytes;
            b["layer_token_local_bytes"] = m.LayerTokenLocalBytes;
            b["host_bytes_per_gpu"] = m.HostBytes;
            o["breakdown"] = b;
        }
        if (p.Time is { } t)
        {
            o["time"] = new JsonObject
            {
                ["forward_s"] = t.Forward,
                ["backward_s"] = t.Backward,
                ["recompute_s"] = t.Recompute,
                ["swap_exposed_s"] = t.SwapExposed,
                ["head_s"] = t.Head,
                ["optimizer_s"] = t.Optimizer,
                ["data_parallel_s"] = t.DataParallel,
                ["layer_communication_s"] = t.LayerCommunication,
                ["swap_bytes_per_gpu"] = t.SwapBytes,
                ["predicted_step_s"] = t.Step,
            };
        }
        return o;
    }

    public static JsonArray Plans(IEnumerable<StrategyPlan> plans) =>
        new(plans.Select(p => (JsonNode?)Plan(p)).ToArray());
}
