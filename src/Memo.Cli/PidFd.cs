using System.Runtime.InteropServices;

namespace Memo.Cli;

/// <summary>Linux process file descriptors (pidfd_open, 5.3+): readable once the process has ended.</summary>
internal static partial class PidFd
{
    private const long SysPidfdOpen = 434; // x86_64 and aarch64 alike
    private const short PollIn = 0x1;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int pid, uint flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int CloseFd(int fd);

    /// <summary>A pidfd for <paramref name="pid"/>, or -1 (no such process, or no pidfd_open on this kernel).</summary>
    public static int Open(int pid) => OperatingSystem.IsLinux() ? (int)Syscall(SysPidfdOpen, pid, 0) : -1;

    /// <summary>Blocks until the process has ended; false if polling failed.</summary>
    public static bool WaitReadable(int fd)
    {
        var p = new PollFd { Fd = fd, Events = PollIn };
        while (true)
        {
            int n = Poll(ref p, 1, -1);
            if (n > 0) return true;
            if (n < 0 && Marshal.GetLastPInvokeError() != 4) return false; // EINTR: poll again
        }
    }

    public static void Close(int fd) => CloseFd(fd);
}
