using Memo.Distributed;

namespace Memo.Tests.Distributed;

/// <summary>
/// The UCX transports memo asks for when the user set none: never cma (it aborts a rank whose peer died), and
/// with every rank on one host no TCP either (its endpoints can hang MPI_Finalize), from Hydra's rank counts.
/// </summary>
public sealed class MpiTransportTests
{
    [Theory]
    [InlineData("2", "2", "self,posix,sysv")] // mpiexec -n 2 on one host
    [InlineData("8", "8", "self,posix,sysv")]
    [InlineData("4", "8", "^cma")]            // 8 ranks over two hosts: TCP between them
    [InlineData(null, "2", "^cma")]           // a launcher that does not say how many ranks are local
    [InlineData(null, null, "^cma")]
    public void Shared_memory_alone_only_when_every_rank_is_on_this_host(string? local, string? job, string expected) =>
        Assert.Equal(expected, MpiCommunicator.DefaultTransports(local, job));
}
