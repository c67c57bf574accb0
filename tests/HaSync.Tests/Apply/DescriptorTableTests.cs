using System.Globalization;
using HaSync.Interop;

namespace HaSync.Tests.Apply;

/// <summary>The agent grows its table of descriptors to a full batch's size at the start of a session (each doubling the
/// kernel does as it fills waits for an RCU grace period, on the thread that applies): the table the kernel reports for
/// the process (FDSize in /proc/self/status) then has room for that many, and no descriptor is left open by it.</summary>
public sealed class DescriptorTableTests
{
    [Fact]
    public void TheTableHasRoomForTheDescriptorsAskedForAndNoneIsLeftOpen()
    {
        long softLimit = Libc.RaiseOpenFileLimit();
        int wanted = (int)Math.Min(Math.Max(FdSize() * 2, 5000), softLimit);
        Assert.True(wanted > FdSize(), $"the test process already has a table of {FdSize()} (limit {softLimit}): nothing to grow");
        int openBefore = Directory.GetFiles("/proc/self/fd").Length;
        Libc.GrowDescriptorTable(wanted);
        Assert.True(FdSize() >= wanted, $"FDSize {FdSize()} after asking for room for {wanted}");
        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, openBefore + 8); // other threads of the test host open some
        Assert.False(File.Exists($"/proc/self/fd/{wanted - 1}"), $"descriptor {wanted - 1} was left open");
    }

    private static int FdSize() =>
        int.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("FDSize:", StringComparison.Ordinal))["FDSize:".Length..].Trim(), CultureInfo.InvariantCulture);
}
