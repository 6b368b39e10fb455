namespace Memo.CostModel;

/// <summary>
/// The work a measurement should be taken at: the model, the step shape and the worker threads of the run being
/// planned. Kernel rates depend on the shapes they run at, so a backend measures its kernels at these.
/// </summary>
/// <param name="Model">The model being planned.</param>
/// <param name="Batch">Sequences per step on the device.</param>
/// <param name="Seq">Tokens per sequence.</param>
/// <param name="Threads">Worker threads of the run (the CPU engine's pool).</param>
/// <param name="RankTransferBytes">Bytes of one message between ranks (a context-parallel ring block, or a gradient
/// all-reduce), to probe the rank-to-rank rate at; 0 when the run has one rank.</param>
public sealed record MeasureWorkload(ModelConfig Model, long Batch, long Seq, int Threads, long RankTransferBytes = 0);
