using System.Runtime.InteropServices;
using Memo.Cpu;

namespace Memo.Tests.Kernels;

/// <summary>
/// <see cref="WorkerPool.For"/> runs every index of a call exactly once and returns only after all of
/// them are done, also when a worker is descheduled across calls. The stress test runs several 2-thread
/// pools at once (more threads than cores, so workers wake late and miss whole calls) through many short
/// calls whose counts alternate, the case where a late worker could claim an index of the next call
/// under the previous call's ticket.
/// </summary>
public sealed unsafe class WorkerPoolTests
{
    private struct CallState
    {
        public int* Hits;
        public int Count;
        public long* Total;
    }

    private static void CountHit(int i, void* p)
    {
        var s = (CallState*)p;
        Interlocked.Increment(ref s->Hits[i]);
        Interlocked.Increment(ref *s->Total);
    }

    [Fact]
    public void Every_index_runs_exactly_once_per_call()
    {
        using var pool = new WorkerPool(3);
        int* hits = (int*)NativeMemory.AllocZeroed(64, sizeof(int));
        long total = 0;
        try
        {
            for (int count = 1; count <= 64; count++)
            {
                new Span<int>(hits, 64).Clear();
                var s = new CallState { Hits = hits, Count = count, Total = &total };
                pool.For(count, &CountHit, &s);
                for (int i = 0; i < 64; i++) Assert.Equal(i < count ? 1 : 0, hits[i]);
            }
        }
        finally
        {
            NativeMemory.Free(hits);
        }
        Assert.Equal(64 * 65 / 2, total);
    }

    [Fact]
    public void Late_workers_never_run_an_index_of_the_next_call()
    {
        const int Drivers = 6, Calls = 150_000, Slots = 4;
        var failures = new string?[Drivers];
        var totals = new long[Drivers];
        var expected = new long[Drivers];
        var threads = new Thread[Drivers];
        for (int d = 0; d < Drivers; d++)
        {
            int id = d;
            threads[d] = new Thread(() =>
            {
                int* hits = (int*)NativeMemory.AllocZeroed(Slots, sizeof(int));
                long total = 0;
                try
                {
                    using (var pool = new WorkerPool(2))
                    {
                        for (int call = 0; call < Calls && failures[id] == null; call++)
                        {
                            int count = 2 + call % (Slots - 1); // 2, 3, 4, 2, 3, 4, ...
                            new Span<int>(hits, Slots).Clear();
                            var s = new CallState { Hits = hits, Count = count, Total = &total };
                            pool.For(count, &CountHit, &s);
                            expected[id] += count;
                            for (int i = 0; i < Slots; i++)
                            {
                                int want = i < count ? 1 : 0, ran = Volatile.Read(ref hits[i]);
                                if (ran != want)
                                {
                                    failures[id] = $"call {call} (count {count}): index {i} had run {ran} times when For returned (expected {want})";
                                    break;
                                }
                            }
                        }
                    } // Dispose joins the worker: every body that ever started has finished
                    totals[id] = Interlocked.Read(ref total);
                }
                finally
                {
                    NativeMemory.Free(hits);
                }
            });
            threads[d].Start();
        }
        foreach (var t in threads) t.Join();
        for (int d = 0; d < Drivers; d++)
        {
            Assert.True(failures[d] == null, failures[d]);
            Assert.Equal(expected[d], totals[d]);
        }
    }
}
