namespace Memo.CostModel;

/// <summary>
/// Measurements the local backend can make to replace a profile's assumptions (implemented by the CLI, which
/// can reach the kernels; the cost model stays free of backends).
/// </summary>
public interface ILocalMeasure
{
    /// <summary>Which profile this backend can measure (e.g. "cpu").</summary>
    bool CanMeasure(DeviceProfile profile);

    /// <summary>
    /// Returns <paramref name="profile"/> with measured fields filled in and their names added to
    /// <see cref="DeviceProfile.Measured"/>; <paramref name="notes"/> receives one line per field that could
    /// not be measured.
    /// </summary>
    DeviceProfile Measure(DeviceProfile profile, ICollection<string> notes);
}
