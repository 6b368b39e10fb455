using Memo.Backends;
using Memo.Cpu.Device;

namespace Memo.Model.Memory;

/// <summary>
/// Acquires and releases the arena regions of a <see cref="MemoryLayout"/> as the runtime moves through the
/// <see cref="IterationTimeline"/>: entering time step t releases the buffers whose lifespan ends at t, then
/// acquires those whose lifespan starts at t. Persistent buffers are acquired once, at construction. The
/// arena's own overlap check then proves at run time that the plan's shared addresses are never in use twice.
/// </summary>
public sealed class ArenaSchedule
{
    private readonly IDeviceArena _arena;
    private readonly MemoryLayout _layout;
    private readonly int[][] _acquireAt;
    private readonly int[][] _releaseAt;
    private readonly bool[] _live;
    private readonly int[] _transient;

    public ArenaSchedule(MemoryLayout layout, IDeviceArena arena)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(arena);
        _layout = layout;
        _arena = arena;
        var buffers = layout.Buffers;
        long end = layout.Timeline.End;
        var acquire = new List<int>[end];
        var release = new List<int>[end];
        for (long t = 0; t < end; t++)
        {
            acquire[t] = [];
            release[t] = [];
        }
        var transient = new List<int>();
        _live = new bool[buffers.Count];
        for (int i = 0; i < buffers.Count; i++)
        {
            var b = buffers[i];
            if (b.Persistent)
            {
                _arena.Acquire(layout.OffsetOf(i), b.Bytes);
                _live[i] = true;
                continue;
            }
            transient.Add(i);
            acquire[b.Lower].Add(i);
            if (b.Upper < end) release[b.Upper].Add(i);
        }
        _acquireAt = acquire.Select(l => l.ToArray()).ToArray();
        _releaseAt = release.Select(l => l.ToArray()).ToArray();
        _transient = [.. transient];
    }

    /// <summary>Enters time step <paramref name="t"/>: releases what ends there (NaN-filled under poisoning), acquires what starts there.</summary>
    public void Enter(long t)
    {
        foreach (int i in _releaseAt[t])
        {
            if (!_live[i]) continue;
            _arena.Release(_layout.OffsetOf(i), _layout.Buffers[i].Bytes);
            _live[i] = false;
        }
        foreach (int i in _acquireAt[t])
        {
            if (_live[i]) continue;
            _arena.Acquire(_layout.OffsetOf(i), _layout.Buffers[i].Bytes);
            _live[i] = true;
        }
    }

    /// <summary>Releases every buffer of the iteration still in use (the end of a step that skipped phases), without filling.</summary>
    public void ReleaseAll()
    {
        foreach (int i in _transient)
        {
            if (!_live[i]) continue;
            _arena.Release(_layout.OffsetOf(i), _layout.Buffers[i].Bytes, fill: false);
            _live[i] = false;
        }
    }

    /// <summary>True while buffer <paramref name="name"/> is acquired.</summary>
    public bool IsLive(BufferId id) => _live[_layout.IndexOf(id)];
}
