// Depth-first search over canonical plans, after the algorithm of google/minimalloc (Moffitt,
// "MiniMalloc", ASPLOS '23): a feasibility search for a given capacity, wrapped in a capacity
// search that probes the lower bound and the problem's capacity first and then steps down from
// the best plan found.
//
// Canonical plans: buffers are placed one at a time in non-decreasing offset order, each at the
// lowest offset above its already-placed neighbours (its "min offset"); ties between equal
// offsets are taken in a static preorder. Any plan can be pushed down into a canonical one with
// no larger peak, so the search is complete. Pruning (all sound):
//   * dominance: never place a buffer at or above the top of an unplaced buffer that could be
//     placed (it would leave a gap that buffer fits into);
//   * section inference: in every section, the floor (the top of what is placed there, or the
//     lowest min offset of an unplaced buffer there) plus the sizes still unplaced there must
//     fit the capacity; and since offsets never decrease, every section's unplaced sizes must
//     fit above the current offset (tested before a buffer is placed, which is where most
//     candidates fail);
//   * hatless buffers: if a buffer that overlaps no unplaced buffer cannot be completed at its
//     lowest offset, no alternative at this node can be either;
//   * dynamic decomposition: once no unplaced buffer crosses a section boundary, the two sides
//     are solved independently.
// A node budget that doubles per round is shared round-robin among several preorders, so one
// unlucky order cannot stall the probe; an exhausted search (no budget hit) proves infeasibility.
//
//   address ^                      placed: a [0,4) over t in [0,6), b [0,3) over t in [6,9)
//         4 |  a a a              c over t in [4,8): min offset = max(top of a, top of b) = 4
//         0 +--------------> t     -> c is placed at 4 (or later, never lower)
//
// Quantities are scaled by the plan granularity (gcd of sizes and alignments) so that every
// value stays small; results are scaled back.
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Memo.Planner;

/// <summary>Canonical depth-first search engine (see the file header).</summary>
public sealed class SearchPlanner : IPlanner
{
    public string Name => "search";

    public PlanResult Solve(Problem problem, PlannerOptions options)
    {
        var prepared = new PreparedProblem(problem, options);
        var (incumbent, log) = BestFitPlanner.Run(prepared);
        var outcome = Improve(prepared, incumbent, prepared.LowerBound, log, 1.0);
        return prepared.Finish(outcome.Offsets, outcome.Improved ? Name : "bestfit", outcome.LowerBound, log, outcome.Parts, outcome.Nodes);
    }

    /// <summary>Result of <see cref="Improve"/>.</summary>
    internal readonly record struct Outcome(long[] Offsets, long LowerBound, bool Improved, int Parts, long Nodes);

    /// <summary>
    /// Capacity search within <paramref name="shareOfTime"/> of the remaining time: a quick probe
    /// of the lower bound, the problem's capacity (when the incumbent exceeds it), the lower
    /// bound again with more time, then capacities stepping down from the best peak.
    /// </summary>
    internal static Outcome Improve(PreparedProblem prepared, long[] incumbent, long lowerBound, List<string> log, double shareOfTime)
    {
        Problem problem = prepared.Problem;
        long g = prepared.Granularity;
        long best = Solution.PeakOf(problem, incumbent);
        long proven = lowerBound;
        bool improved = false;
        long nodes = 0;
        if (best <= proven) return new(incumbent, proven, false, 1, 0);
        var engine = new Workers(prepared);
        double deadline = prepared.Clock.Elapsed.TotalSeconds + prepared.RemainingSeconds * shareOfTime;
        double Remaining() => Math.Max(0, deadline - prepared.Clock.Elapsed.TotalSeconds);

        // Probe order: the lower bound (the likeliest optimum) briefly, the capacity when the
        // incumbent exceeds it (the plan must fit first), the lower bound again for longer,
        // then capacities stepping down from the best peak, halving the step whenever a probe
        // runs out of time.
        long lo = proven;
        long step = 0;
        bool triedCapacity = problem.Capacity is not long c0 || c0 >= best || c0 <= lo;
        bool quickLowerBound = !triedCapacity;
        bool triedLowerBound = false;
        bool lastTry = false;
        while (Remaining() > 0 && lo <= best - g)
        {
            long cap;
            double budget;
            long nodeCap = long.MaxValue;
            if (quickLowerBound)
            {
                quickLowerBound = false;
                cap = lo;
                budget = Remaining() * 0.05;
                nodeCap = QuickProbeNodes * Math.Max(16, problem.Count);
            }
            else if (!triedCapacity)
            {
                triedCapacity = true;
                cap = problem.Capacity!.Value;
                cap -= cap % g;
                budget = Remaining() * 0.3;
                if (cap < lo || cap >= best) continue;
            }
            else if (!triedLowerBound)
            {
                triedLowerBound = true;
                cap = lo;
                budget = Remaining() * 0.4;
            }
            else
            {
                if (step == 0) step = Math.Max(g, (best - lo) / 8 / g * g);
                cap = Math.Max(lo, best - step);
                budget = lastTry ? Remaining() : Remaining() / 3;
            }
            var sw = Stopwatch.StartNew();
            var (result, offsets, probeNodes) = engine.Probe(cap, prepared.Clock.Elapsed.TotalSeconds + budget, nodeCap);
            nodes += probeNodes;
            log.Add($"search: capacity {cap}: {result} after {probeNodes} nodes in {sw.Elapsed.TotalSeconds:F3} s ({engine.LastOrder})");
            switch (result)
            {
                case ProbeResult.Found:
                    lastTry = false;
                    incumbent = offsets!;
                    best = Solution.PeakOf(problem, incumbent);
                    prepared.Record(best);
                    improved = true;
                    break;
                case ProbeResult.Infeasible:
                    proven = Math.Max(proven, cap + g);
                    lo = proven;
                    if (step > 0) step = Math.Max(g, (best - lo) / 2 / g * g);
                    break;
                default:
                    // Out of time at this capacity: step down less far next time. After a failed
                    // single step there is nothing closer to try: give that step all the time
                    // left, once.
                    if (step > 0 && step == g && cap == best - g)
                    {
                        if (lastTry) return new(incumbent, proven, improved, engine.PartitionCount, nodes);
                        lastTry = true;
                    }
                    if (step > 0) step = Math.Max(g, step / 2 / g * g);
                    break;
            }
        }
        return new(incumbent, proven, improved, engine.PartitionCount, nodes);
    }

    /// <summary>Node budget of the first, quick look at the lower bound, per buffer.</summary>
    private const long QuickProbeNodes = 32;

    internal enum ProbeResult
    {
        Found,
        Infeasible,
        Timeout,
    }

    private enum Status
    {
        Found,
        NotFound,
        Aborted,
        Timeout,
    }

    /// <summary>One preorder: a comparison on per-buffer keys.</summary>
    private enum Key
    {
        /// <summary>Largest unplaced load of any section the buffer spans.</summary>
        Total,

        /// <summary>Size x lifespan length.</summary>
        Area,

        /// <summary>Lifespan length.</summary>
        Width,
    }

    // Preorders tried round-robin (each descending, ties by index): width-area-total,
    // total-area-width, total-width-area, the orders minimalloc's authors settled on.
    private static readonly Key[][] Heuristics =
    [
        [Key.Width, Key.Area, Key.Total],
        [Key.Total, Key.Area, Key.Width],
        [Key.Total, Key.Width, Key.Area],
    ];

    private struct Entry
    {
        public long Offset;
        public int Rank;
        public int Buffer;
    }

    /// <summary>
    /// Runs a probe on one or more dedicated threads (large stacks: the search recurses once per
    /// placed buffer). With several threads, each owns an engine and a share of the preorders,
    /// and the first thread to settle the probe (found or proven infeasible) stops the others.
    /// </summary>
    private sealed class Workers
    {
        private const int StackBytes = 256 << 20;
        private readonly Engine[] _engines;
        private readonly Key[][][] _orders;

        public Workers(PreparedProblem prepared)
        {
            int threads = Math.Clamp(prepared.Options.SearchThreads, 1, Heuristics.Length);
            _engines = new Engine[threads];
            _orders = new Key[threads][][];
            for (int t = 0; t < threads; t++)
            {
                _engines[t] = new Engine(prepared);
                _orders[t] = Heuristics.Where((_, h) => h % threads == t).ToArray();
            }
        }

        public int PartitionCount => _engines[0].PartitionCount;

        public string LastOrder { get; private set; } = "";

        public (ProbeResult, long[]?, long Nodes) Probe(long capacity, double deadline, long nodeCap)
        {
            int threads = _engines.Length;
            var results = new (ProbeResult Result, long[]? Offsets, long Nodes)[threads];
            var cancel = new StrongBox<int>();
            int winner = -1;
            Exception? failure = null;
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                workers[t] = new Thread(() =>
                {
                    try
                    {
                        results[id] = _engines[id].Probe(capacity, deadline, nodeCap, _orders[id], cancel);
                        if (results[id].Result != ProbeResult.Timeout && Interlocked.CompareExchange(ref winner, id, -1) == -1)
                            Volatile.Write(ref cancel.Value, 1);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        failure = e;
                        Volatile.Write(ref cancel.Value, 1);
                    }
                }, StackBytes) { IsBackground = true, Name = $"memo-search-{id}" };
                workers[t].Start();
            }
            foreach (Thread w in workers) w.Join();
            if (failure is not null) throw new InvalidOperationException("search worker failed", failure);
            long nodes = results.Sum(r => r.Nodes);
            int pick = winner >= 0 ? winner : 0;
            LastOrder = _engines[pick].LastOrder + (threads > 1 ? $", {threads} threads" : "");
            return winner >= 0 ? (results[winner].Result, results[winner].Offsets, nodes) : (ProbeResult.Timeout, null, nodes);
        }
    }

    /// <summary>The search state for one problem (sizes scaled by the granularity, zero sizes removed).</summary>
    private sealed class Engine
    {
        private readonly PreparedProblem _prepared;
        private readonly int _n;
        private readonly int[] _map;          // engine buffer -> problem buffer
        private readonly long[] _size;
        private readonly long[] _align;
        private readonly double[] _area;
        private readonly long[] _width;
        private readonly int[] _first;
        private readonly int[] _end;
        private readonly int[] _ovStart, _ovIndex;
        private readonly int[] _memStart, _memIndex;  // section -> buffers
        private readonly int[] _cuts0;
        private readonly List<Partition> _partitions;
        private readonly bool _inference;
        private readonly bool _decompose;

        // Mutable search state.
        private readonly long[] _offset;
        private readonly long[] _minOffset;
        private readonly long[] _floor;
        private readonly long[] _total;
        private readonly int[] _cuts;
        private readonly long[] _solution;
        private readonly int[] _sectionMark;
        private int _markEpoch;
        private readonly long[] _umin;        // lowest min offset of an unplaced buffer per section (MaxValue: none)
        private readonly int[] _uminCount;    // how many unplaced buffers of the section have that min offset
        private long[] _undoValue = new long[1024];
        private int[] _undoIndex = new int[1024];  // see UndoTo for the encoding
        private int _undoTop;
        private Entry[] _stack = new Entry[1024];
        private int _stackTop;
        private int[] _affected = new int[256];
        private long _capacity;
        private long _nodesLeft;
        private long _nodes;
        private double _deadline;
        private long _nodeCap = long.MaxValue;
        private StrongBox<int> _cancel = new();

        public Engine(PreparedProblem prepared)
        {
            _prepared = prepared;
            Problem problem = prepared.Problem;
            long g = prepared.Granularity;
            var map = new List<int>();
            for (int i = 0; i < problem.Count; i++)
                if (problem.Buffers[i].Size > 0) map.Add(i);
            _map = map.ToArray();
            _n = _map.Length;
            var sub = new Buffer[_n];
            _size = new long[_n];
            _align = new long[_n];
            _area = new double[_n];
            _width = new long[_n];
            for (int k = 0; k < _n; k++)
            {
                Buffer b = problem.Buffers[_map[k]];
                sub[k] = b;
                _size[k] = b.Size / g;
                _align[k] = Math.Max(1, prepared.Alignments[_map[k]] / g);
                _area[k] = (double)b.Size * b.Lifespan.Length;
                _width[k] = b.Lifespan.Length;
            }
            var subProblem = new Problem(sub);
            var sweep = Sweep.Run(subProblem);
            _first = sweep.BufferFirstSection;
            _end = sweep.BufferEndSection;
            (_ovStart, _ovIndex) = Sweep.Overlaps(subProblem);
            int sections = sweep.SectionCount;
            _memStart = new int[sections + 1];
            for (int k = 0; k < _n; k++)
                for (int s = _first[k]; s < _end[k]; s++) _memStart[s + 1]++;
            for (int s = 0; s < sections; s++) _memStart[s + 1] += _memStart[s];
            _memIndex = new int[_memStart[sections]];
            var fill = (int[])_memStart.Clone();
            for (int k = 0; k < _n; k++)
                for (int s = _first[k]; s < _end[k]; s++) _memIndex[fill[s]++] = k;
            _cuts0 = sweep.Cuts;
            _inference = prepared.Options.SectionInference;
            _decompose = prepared.Options.Decompose;
            _partitions = _decompose
                ? [.. sweep.Partitions]
                : [new Partition(Enumerable.Range(0, _n).ToArray(), 0, sections)];
            _offset = new long[_n];
            _minOffset = new long[_n];
            _floor = new long[sections];
            _total = new long[sections];
            _umin = new long[sections];
            _uminCount = new int[sections];
            _cuts = new int[_cuts0.Length];
            _solution = new long[_n];
            _sectionMark = new int[sections];
        }

        public int PartitionCount => _partitions.Count;

        /// <summary>The preorder and node limit of the last probe's final attempt.</summary>
        public string LastOrder { get; private set; } = "";

        /// <summary>
        /// Looks for a plan with peak <= capacity (in bytes) until the deadline (seconds on the
        /// prepared clock) or until <paramref name="cancel"/> is set, trying the given preorders
        /// round-robin with a node limit that doubles every round.
        /// </summary>
        public (ProbeResult, long[]?, long Nodes) Probe(long capacity, double deadline, long nodeCap, Key[][] heuristics, StrongBox<int> cancel)
        {
            long g = _prepared.Granularity;
            _capacity = capacity / g;
            _deadline = deadline;
            _cancel = cancel;
            _nodes = 0;
            _nodeCap = nodeCap;
            long limit = Math.Max(2, _n);
            while (true)
            {
                limit = limit >= long.MaxValue / 2 ? long.MaxValue : limit * 2;
                foreach (Key[] heuristic in heuristics)
                {
                    LastOrder = $"order {string.Join('-', heuristic)}, node limit {limit}";
                    Reset();
                    // The max-load bound, per section.
                    if (MaxTotal(0, _total.Length) > _capacity) return (ProbeResult.Infeasible, null, _nodes);
                    _nodesLeft = limit;
                    Status status = Status.Found;
                    foreach (Partition p in _partitions)
                    {
                        status = SubSolve(p.Buffers, p.FirstSection, p.EndSection, heuristic);
                        if (status != Status.Found) break;
                    }
                    switch (status)
                    {
                        case Status.Found:
                            var offsets = new long[_prepared.Problem.Count];
                            for (int k = 0; k < _n; k++) offsets[_map[k]] = checked(_solution[k] * g);
                            return (ProbeResult.Found, offsets, _nodes);
                        case Status.NotFound:
                            return (ProbeResult.Infeasible, null, _nodes);
                        case Status.Timeout:
                            return (ProbeResult.Timeout, null, _nodes);
                    }
                }
            }
        }

        private void Reset()
        {
            Array.Fill(_offset, -1);
            Array.Clear(_minOffset);
            Array.Clear(_floor);
            Array.Clear(_total);
            Array.Clear(_umin);
            for (int s = 0; s < _uminCount.Length; s++) _uminCount[s] = _memStart[s + 1] - _memStart[s];
            for (int k = 0; k < _n; k++)
                for (int s = _first[k]; s < _end[k]; s++) _total[s] += _size[k];
            Array.Copy(_cuts0, _cuts, _cuts0.Length);
            _undoTop = 0;
            _stackTop = 0;
        }

        private long KeyValue(Key key, int b) => key switch
        {
            Key.Total => MaxTotal(b),
            Key.Width => _width[b],
            _ => 0,
        };

        private long MaxTotal(int b)
        {
            long t = 0;
            for (int s = _first[b]; s < _end[b]; s++) t = Math.Max(t, _total[s]);
            return t;
        }

        /// <summary>Sorts the buffers of a (sub-)partition by the heuristic and searches it.</summary>
        private Status SubSolve(IReadOnlyList<int> buffers, int firstSection, int endSection, Key[] heuristic)
        {
            int k = buffers.Count;
            var keys = new long[k * heuristic.Length];
            var areas = new double[k];
            var order = new int[k];
            for (int i = 0; i < k; i++)
            {
                order[i] = i;
                areas[i] = _area[buffers[i]];
                for (int h = 0; h < heuristic.Length; h++) keys[i * heuristic.Length + h] = KeyValue(heuristic[h], buffers[i]);
            }
            int width = heuristic.Length;
            Array.Sort(order, (x, y) =>
            {
                for (int h = 0; h < width; h++)
                {
                    int c = heuristic[h] == Key.Area
                        ? areas[y].CompareTo(areas[x])
                        : keys[y * width + h].CompareTo(keys[x * width + h]);
                    if (c != 0) return c;
                }
                return buffers[x].CompareTo(buffers[y]);
            });
            int start = _stackTop;
            EnsureStack(start + k);
            for (int r = 0; r < k; r++)
            {
                int b = buffers[order[r]];
                _stack[start + r] = new Entry { Offset = _minOffset[b], Rank = r, Buffer = b };
            }
            _stackTop = start + k;
            Status status = Search(start, k, firstSection, endSection, 0, 0, heuristic);
            _stackTop = start;
            return status;
        }

        private void EnsureStack(int size)
        {
            if (size > _stack.Length) Array.Resize(ref _stack, Math.Max(size, _stack.Length * 2));
        }

        private const int MinOffsetTag = 0, FloorTag = 1, UminTag = 2, CountTag = 3;

        private void PushUndo(int tag, int index, long value)
        {
            if (_undoTop == _undoIndex.Length)
            {
                Array.Resize(ref _undoIndex, _undoTop * 2);
                Array.Resize(ref _undoValue, _undoTop * 2);
            }
            _undoIndex[_undoTop] = (index << 2) | tag;
            _undoValue[_undoTop] = value;
            _undoTop++;
        }

        private void UndoTo(int mark)
        {
            while (_undoTop > mark)
            {
                _undoTop--;
                int code = _undoIndex[_undoTop];
                long value = _undoValue[_undoTop];
                switch (code & 3)
                {
                    case MinOffsetTag: _minOffset[code >> 2] = value; break;
                    case FloorTag: _floor[code >> 2] = value; break;
                    case UminTag: _umin[code >> 2] = value; break;
                    default: _uminCount[code >> 2] = (int)value; break;
                }
            }
        }

        /// <summary>Floor of a section: the top of what is placed there, raised to the lowest min offset of what is not.</summary>
        private long EffectiveFloor(int s) => _umin[s] == long.MaxValue ? _floor[s] : Math.Max(_floor[s], _umin[s]);

        private long MaxTotal(int firstSection, int endSection)
        {
            long max = 0;
            for (int s = firstSection; s < endSection; s++) max = Math.Max(max, _total[s]);
            return max;
        }

        private Status Search(int parentStart, int parentCount, int firstSection, int endSection, long lastOffset, int lastRank, Key[] heuristic)
        {
            if (--_nodesLeft < 0) return Status.Aborted;
            _nodes++;
            if (_nodes > _nodeCap) return Status.Timeout;
            if ((_nodes & 15) == 0 && (Volatile.Read(ref _cancel.Value) != 0 || _prepared.Clock.Elapsed.TotalSeconds >= _deadline)) return Status.Timeout;

            // The unplaced buffers of this partition, by (min offset, rank).
            int start = _stackTop;
            EnsureStack(start + parentCount);
            int count = 0;
            for (int i = 0; i < parentCount; i++)
            {
                Entry e = _stack[parentStart + i];
                if (_offset[e.Buffer] >= 0) continue;
                e.Offset = _minOffset[e.Buffer];
                _stack[start + count++] = e;
            }
            if (count == 0) return Status.Found;
            _stackTop = start + count;
            // The parent's order is nearly sorted (only neighbours of the last placed buffer
            // moved up), so insertion sort is close to linear here.
            var segment = _stack.AsSpan(start, count);
            long minHeight = long.MaxValue;
            for (int i = 0; i < segment.Length; i++)
            {
                Entry e = segment[i];
                minHeight = Math.Min(minHeight, e.Offset + _size[e.Buffer]);
                int j = i - 1;
                while (j >= 0 && (segment[j].Offset > e.Offset || (segment[j].Offset == e.Offset && segment[j].Rank > e.Rank)))
                {
                    segment[j + 1] = segment[j];
                    j--;
                }
                segment[j + 1] = e;
            }

            // Largest unplaced load of any section at this node; placements only lower it.
            long nodeMaxTotal = _inference ? MaxTotal(firstSection, endSection) : 0;
            var critical = new Critical { Room = long.MinValue };
            for (int i = 0; i < count; i++)
            {
                Entry e = _stack[start + i];
                // Canonical order: offsets never decrease; equal offsets go by rank.
                if (e.Offset < lastOffset || (e.Offset == lastOffset && e.Rank < lastRank)) continue;
                // Dominance: placing at or above an unplaced buffer's top leaves a gap it fits in.
                if (e.Offset >= minHeight) continue;
                int b = e.Buffer;
                long height = e.Offset + _size[b];
                if (height > _capacity || !FitsAbove(b, e.Offset, firstSection, endSection, nodeMaxTotal, ref critical))
                {
                    // b cannot go here; if it constrains nothing unplaced, it cannot go anywhere.
                    if (IsHatless(b)) break;
                    continue;
                }
                int mark = _undoTop;
                bool fits = Place(b, e.Offset, out bool hatless);
                Status status = Status.NotFound;
                if (fits)
                {
                    status = _decompose
                        ? Decompose(b, start, count, firstSection, endSection, e.Offset, e.Rank, heuristic)
                        : Search(start, count, firstSection, endSection, e.Offset, e.Rank, heuristic);
                }
                UndoTo(mark);
                for (int s = _first[b]; s < _end[b]; s++) _total[s] += _size[b];
                _offset[b] = -1;
                if (status != Status.NotFound)
                {
                    _stackTop = start;
                    return status;
                }
                // Hatless: b constrains no unplaced buffer, so it can sit here in any completion;
                // if none exists with it here, none exists at all.
                if (hatless) break;
            }
            _stackTop = start;
            return Status.NotFound;
        }

        /// <summary>
        /// Places b and propagates: min offsets of its unplaced neighbours, floors and unplaced
        /// loads of its sections, and the lowest unplaced min offset of every section where that
        /// may have changed. Returns false, possibly before propagating everything (the undo log
        /// still restores all of it), as soon as a section's floor plus its unplaced load exceeds
        /// the capacity. <paramref name="hatless"/>: no unplaced buffer overlaps b.
        /// </summary>
        /// <remarks>
        /// Only sections whose lowest unplaced min offset changed need the test: in b's own
        /// sections the floor becomes offset + size, and floor + unplaced load = offset + load
        /// there was already checked by <see cref="FitsAbove"/>; elsewhere nothing else changed.
        /// </remarks>
        private bool Place(int b, long offset, out bool hatless)
        {
            hatless = true;
            _offset[b] = offset;
            _solution[b] = offset;
            long height = offset + _size[b];
            int recompute = 0;
            _markEpoch++;
            for (int k = _ovStart[b]; k < _ovStart[b + 1]; k++)
            {
                int o = _ovIndex[k];
                if (_offset[o] >= 0) continue;
                hatless = false;
                long old = _minOffset[o];
                if (old >= height) continue;
                PushUndo(MinOffsetTag, o, old);
                _minOffset[o] = Checked.AlignUp(height, _align[o]);
                if (!_inference) continue;
                // Only sections where o held the lowest min offset can see that minimum rise,
                // and only once no other unplaced buffer there holds it too.
                for (int s = _first[o]; s < _end[o]; s++)
                {
                    if (_umin[s] != old || _sectionMark[s] == _markEpoch) continue;
                    PushUndo(CountTag, s, _uminCount[s]);
                    if (--_uminCount[s] > 0) continue;
                    _sectionMark[s] = _markEpoch;
                    Append(ref _affected, ref recompute, s);
                }
            }
            long own = _minOffset[b];
            for (int s = _first[b]; s < _end[b]; s++)
            {
                PushUndo(FloorTag, s, _floor[s]);
                _floor[s] = height;
                _total[s] -= _size[b];
                // b leaves the unplaced set: its sections need a new minimum if b held it alone.
                if (!_inference || _umin[s] != own || _sectionMark[s] == _markEpoch) continue;
                PushUndo(CountTag, s, _uminCount[s]);
                if (--_uminCount[s] > 0) continue;
                _sectionMark[s] = _markEpoch;
                Append(ref _affected, ref recompute, s);
            }
            for (int a = 0; a < recompute; a++)
            {
                int s = _affected[a];
                long low = long.MaxValue;
                int count = 0;
                for (int m = _memStart[s]; m < _memStart[s + 1]; m++)
                {
                    int o = _memIndex[m];
                    if (_offset[o] >= 0) continue;
                    long v = _minOffset[o];
                    if (v < low)
                    {
                        low = v;
                        count = 1;
                    }
                    else if (v == low)
                    {
                        count++;
                    }
                }
                PushUndo(CountTag, s, _uminCount[s]);
                _uminCount[s] = count;
                if (low == _umin[s]) continue;
                PushUndo(UminTag, s, _umin[s]);
                _umin[s] = low;
                if (EffectiveFloor(s) + _total[s] > _capacity) return false;
            }
            return true;
        }

        private static void Append(ref int[] list, ref int count, int s)
        {
            if (count == list.Length) Array.Resize(ref list, count * 2);
            list[count++] = s;
        }

        /// <summary>Sections whose unplaced load exceeds Room (= capacity - offset): [Lo, Hi].</summary>
        private struct Critical
        {
            public long Room;
            public int Lo;
            public int Hi;
        }

        /// <summary>
        /// Offsets never decrease, so after b is placed at <paramref name="offset"/> every
        /// section's unplaced load must fit above that offset. Exactly: b must span every section
        /// whose load exceeds the room above the offset, and be large enough to bring the
        /// largest load (<paramref name="nodeMaxTotal"/>) within it. Tested before placing b,
        /// with the critical sections computed once per distinct offset.
        /// </summary>
        private bool FitsAbove(int b, long offset, int firstSection, int endSection, long nodeMaxTotal, ref Critical critical)
        {
            if (!_inference) return true;
            long room = _capacity - offset;
            if (nodeMaxTotal <= room) return true;
            if (_size[b] < nodeMaxTotal - room) return false;
            if (critical.Room != room)
            {
                critical.Room = room;
                critical.Lo = int.MaxValue;
                critical.Hi = -1;
                for (int s = firstSection; s < endSection; s++)
                {
                    if (_total[s] <= room) continue;
                    if (critical.Lo == int.MaxValue) critical.Lo = s;
                    critical.Hi = s;
                }
            }
            return _first[b] <= critical.Lo && critical.Hi < _end[b];
        }

        private bool IsHatless(int b)
        {
            for (int k = _ovStart[b]; k < _ovStart[b + 1]; k++)
                if (_offset[_ovIndex[k]] < 0) return false;
            return true;
        }

        private Status Decompose(int b, int start, int count, int firstSection, int endSection, long offset, int rank, Key[] heuristic)
        {
            // Placing b removes it from the cuts it spans; zero cuts split the partition.
            List<int>? cutpoints = null;
            for (int s = _first[b]; s + 1 < _end[b]; s++)
            {
                if (--_cuts[s] == 0 && s + 1 > firstSection && s + 1 < endSection)
                    (cutpoints ??= [firstSection]).Add(s + 1);
            }
            Status status;
            if (cutpoints is null)
            {
                status = Search(start, count, firstSection, endSection, offset, rank, heuristic);
            }
            else
            {
                cutpoints.Add(endSection);
                status = Status.Found;
                for (int c = 1; c < cutpoints.Count && status == Status.Found; c++)
                {
                    int lo = cutpoints[c - 1], hi = cutpoints[c];
                    var members = new List<int>();
                    for (int i = 0; i < count; i++)
                    {
                        int o = _stack[start + i].Buffer;
                        if (_offset[o] < 0 && _first[o] < hi && lo < _end[o]) members.Add(o);
                    }
                    if (members.Count == 0) continue;
                    status = SubSolve(members, lo, hi, heuristic);
                }
            }
            for (int s = _first[b]; s + 1 < _end[b]; s++) _cuts[s]++;
            return status;
        }
    }
}
