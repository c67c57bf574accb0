using HaSync.Sync;

namespace HaSync.Tests.Sync;

/// <summary>The progress lines a person follows during a resync.</summary>
public class ResyncProgressTests
{
    [Fact]
    public void TheCompareLineCountsBothSidesAndSaysWhichIsDone()
    {
        var step = new CompareProgress(new(1204, 58_930_000, Done: true), new(980, 3 << 20, Done: false));
        Assert.Equal("comparing: active 1204 entries, 56.2 MiB hashed, done; passive 980 entries, 3 MiB hashed", step.ToString());
    }

    [Theory]
    [InlineData(0L, 10.0, "0 B of 3 GiB")]                                         // nothing sent yet: no rate to speak of
    [InlineData(1L << 30, 0.2, "1 GiB of 3 GiB")]                                   // too early for a rate
    [InlineData(1L << 30, 10.0, "1 GiB of 3 GiB, 102 MiB/s, 0:20 left")]
    [InlineData(1L << 20, 10.0, "1 MiB of 3 GiB, 102 KiB/s, 8:31:50 left")]
    [InlineData(3L << 30, 30.0, "3 GiB of 3 GiB, 102 MiB/s, 0:00 left")]
    public void ThePushLineGivesBytesRateAndTimeLeft(long bytes, double seconds, string expected)
    {
        var step = new PushProgress(7, 20, "whole", "/etc/bm/big.bin", bytes, 3L << 30);
        Assert.Equal(expected, step.Transfer(TimeSpan.FromSeconds(seconds)));
    }
}
