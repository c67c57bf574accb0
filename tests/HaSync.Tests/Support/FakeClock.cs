namespace HaSync.Tests.Support;

/// <summary>A clock that moves only when a test says so.</summary>
internal sealed class FakeClock : TimeProvider
{
    private DateTimeOffset _now = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);
    public override DateTimeOffset GetUtcNow() => _now;
    public void Advance(int milliseconds) => _now += TimeSpan.FromMilliseconds(milliseconds);
}
