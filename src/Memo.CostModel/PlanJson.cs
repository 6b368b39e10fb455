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
        o["lm_head"] = r.LogitsChunkTokens is null ? "whole" : "chunked";
        o["logits_chunk_tokens"] = r.LogitsChunkTokens;
        o["features_disabled"] = new JsonArray(r.Without.Order(StringComparer.Ordinal).Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        o["mfu_conventions"] = new JsonObject
        {
            ["mfu"] = "model FLOPs with attention counted for the causal half (QK^T and PV over s^2/2 pairs), as the MEMO paper counts; 3 x forward, recomputation not counted",
            ["mfu_full_attention"] = "the same with attention counted over the full s^2 score matrix",
        };
        o["assumptions"] = Assumptions(r);
        return o;
    }

    /// <summary>Every assumed figure with its value, kind and source.</summary>
    public static JsonArray Assumptions(PlanRequest r) =>
        new(CostModel.Assumptions.For(r).Select(a => (JsonNode?)new JsonObject
        {
            ["key"] = a.Key,
            ["value"] = a.Value,
            ["unit"] = a.Unit,
            ["kind"] = a.Kind,
            ["source"] = a.Source,
        }).ToArray());

    /// <summary>The sensitivity table: per parameter, each strategy's fit, alpha, MFU and device peak worse / base / better.</summary>
    public static JsonArray Sensitivity(IReadOnlyList<SensitivityRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        static JsonArray Three<T>(T a, T b, T c) => new(JsonValue.Create(a), JsonValue.Create(b), JsonValue.Create(c));
        return new JsonArray(rows.Select(row => (JsonNode?)new JsonObject
        {
            ["parameter"] = row.Parameter.Key,
            ["change"] = row.Parameter.Change,
            ["values"] = Three(row.WorseValue, row.BaseValue, row.BetterValue),
            ["strategies"] = new JsonArray(row.Base.Select((b, i) => (JsonNode?)new JsonObject
            {
                ["strategy"] = StrategyPlan.StrategyName(b.Strategy),
                ["fits"] = Three(row.Worse[i].Fits, b.Fits, row.Better[i].Fits),
                ["mfu"] = Three(row.Worse[i].Mfu, b.Mfu, row.Better[i].Mfu),
                ["alpha"] = Three(row.Worse[i].Alpha, b.Alpha, row.Better[i].Alpha),
                ["device_peak_bytes"] = Three(row.Worse[i].DevicePeakBytes, b.DevicePeakBytes, row.Better[i].DevicePeakBytes),
            }).ToArray()),
        }).ToArray());
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
            ["mfu_causal"] = p.Mfu,
            ["mfu_full_attention"] = p.MfuFullAttention,
            ["model_flops"] = p.ModelFlops,
            ["model_flops_full_attention"] = p.ModelFlopsFullAttention,
            ["pipeline_stages"] = p.Layout?.Pp,
            ["features"] = new JsonObject
            {
                ["list"] = new JsonArray(p.FeatureList.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
                ["checkpointing"] = p.Checkpointing,
                ["selective_recompute"] = p.Features.SelectiveRecompute,
                ["cpu_checkpointing"] = p.Features.CpuCheckpointing,
                ["offloaded_layers"] = p.Features.OffloadedLayers,
                ["pipeline_stages"] = p.Layout?.Pp,
                ["zero_stage"] = p.Layout?.ZeroStage,
                ["lm_head"] = p.LogitsChunkTokens is null ? "whole" : "chunked",
                ["logits_chunk_tokens"] = p.LogitsChunkTokens,
                ["vocab_parallel"] = p.Layout is { Tp: > 1 },
                ["allocator"] = p.Strategy is Strategy.Memo or Strategy.Keep || p.FragmentationSource.StartsWith("the engine", StringComparison.Ordinal) ? "planned arena" : "caching allocator",
                ["fragmentation_factor"] = p.FragmentationFactor,
                ["fragmentation_source"] = p.FragmentationSource,
            },
        };
        if (p.DiskCapacityBytesPerNode is long disk)
        {
            // With a disk tier: where each swapped byte lives, per node (host_bytes_per_node is then the RAM part).
            o["swapped_bytes_per_node"] = new JsonObject { ["host_ram"] = p.HostBytesPerNode, ["disk"] = p.DiskBytesPerNode };
            o["disk_capacity_bytes_per_node"] = disk;
            o["disk_layers"] = p.Memory?.DiskLayers ?? 0;
        }
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
                ["pipeline_s"] = t.Pipeline,
                ["layer_communication_s"] = t.LayerCommunication,
                ["swap_bytes_per_gpu"] = t.SwapBytes,
                ["predicted_step_s"] = t.Step,
            };
            if (t.CommunicatedBytes > 0)
            {
                // The CPU engine's ranks: bytes one rank sends per step, and the communication not hidden behind compute.
                var time = (JsonObject)o["time"]!;
                time["ring_bytes_per_step"] = t.LayerCommunicationBytes;
                time["allreduce_bytes_per_step"] = t.DataParallelBytes;
                time["communicated_bytes_per_step"] = t.CommunicatedBytes;
                time["communication_exposed_s"] = t.LayerCommunication + t.DataParallel;
            }
        }
        return o;
    }

    public static JsonArray Plans(IEnumerable<StrategyPlan> plans) =>
        new(plans.Select(p => (JsonNode?)Plan(p)).ToArray());
}
