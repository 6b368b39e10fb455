namespace Memo.CostModel;

/// <summary>
/// The work a measurement should be taken at: the model, the step shape and the worker threads of the run being
/// planned. Kernel rates depend on the shapes they run at, so a backend measures its kernels at these.
/// </summary>
/// <param name="Model">The model being planned.</param>
/// <param name="Batch">Sequences per step on the device.</param>
/// <param name="Seq">Tokens per sequence.</param>
/// <param name="Threads">Worker threads of the run (the CPU engine's pool).</param>
public sealed record MeasureWorkload(ModelConfig Model, long Batch, long Seq, int Threads);

/// <summary>
/// Measurements the local backend can make to replace a profile's assumptions (the CPU engine:
/// <see cref="CpuMeasure"/>; a CUDA backend would plug in here).
/// </summary>
public interface ILocalMeasure
{
    /// <summary>Which profile this backend can measure (e.g. "cpu").</summary>
    bool CanMeasure(DeviceProfile profile);

    /// <summary>
    /// Returns <paramref name="profile"/> with measured fields filled in and their names added to
    /// <see cref="DeviceProfile.Measured"/>; <paramref name="notes"/> receives one line per field that could
    /// not be measured, or per measured figure.
    /// </summary>
    DeviceProfile Measure(DeviceProfile profile, ICollection<string> notes);

    /// <summary>
    /// As <see cref="Measure(DeviceProfile, ICollection{string})"/>, with the kernels timed at the shapes of
    /// <paramref name="workload"/> where the backend can; by default the same as without a workload.
    /// </summary>
    DeviceProfile Measure(DeviceProfile profile, MeasureWorkload workload, ICollection<string> notes) => Measure(profile, notes);
}
