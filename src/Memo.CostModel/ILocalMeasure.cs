namespace Memo.CostModel;

/// <summary>
/// Measurements the local backend can make to replace a profile's assumptions (the CPU engine:
/// src/Memo.CostModel.Cpu/CpuMeasure.cs; a CUDA backend would plug in here).
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
