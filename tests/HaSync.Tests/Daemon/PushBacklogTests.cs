using HaSync.Daemon;
using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>What a target still has to push, and each failing path's retry schedule, on a fake clock.</summary>
public class PushBacklogTests
{
    private readonly FakeClock _clock = new();
    private readonly PushBacklog _backlog;

    public PushBacklogTests() => _backlog = new PushBacklog(_clock, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(30));

    private static Dictionary<string, string> Failed(string path) => new() { [path] = $"{path}: No space left on device" };

    private void FailOnce(string path)
    {
        var round = _backlog.Take();
        Assert.Contains(path, round.Paths);
        _backlog.Complete(round, Failed(path));
    }

    [Fact]
    public void ARoundTakesAtMostTheLimitAndTheRestWaitsWithTheOldestTime()
    {
        var first = _clock.GetUtcNow();
        _backlog.Add(Enumerable.Range(0, 10).Select(i => $"/etc/bm/f{i}.conf"), false, first);
        _clock.Advance(500);
        var some = _backlog.Take(max: 4);
        Assert.Equal(4, some.Paths.Count);
        Assert.Equal(first, some.Since);
        Assert.True(_backlog.HasWork);
        Assert.Equal(10, _backlog.Count());         // in flight or waiting, all still to do
        Assert.Equal(first, _backlog.OldestPending);
        var rest = _backlog.Take(max: 100);
        Assert.Equal(6, rest.Paths.Count);
        Assert.Empty(some.Paths.Intersect(rest.Paths));
        Assert.False(_backlog.HasWork);
        _backlog.Complete(some, new Dictionary<string, string>());
        Assert.Equal(6, _backlog.Count());          // the second round is still in flight
        _backlog.Complete(rest, new Dictionary<string, string>());
        Assert.Equal(0, _backlog.Count());
        Assert.Null(_backlog.OldestPending);
    }

    [Fact]
    public void APathDeferredFromARoundIsTakenByTheNextAndTheRestStaysInFlight()
    {
        _backlog.Add(["/etc/bm/a.conf", "/etc/bm/b.conf", "/etc/bm/c.conf"], false, _clock.GetUtcNow());
        var round = _backlog.Take();
        var kept = _backlog.Defer(round, new HashSet<string>(["/etc/bm/b.conf"], StringComparer.Ordinal));
        Assert.Equal(["/etc/bm/a.conf", "/etc/bm/c.conf"], kept.Paths.Order(StringComparer.Ordinal));
        Assert.True(_backlog.HasWork);
        Assert.Equal(3, _backlog.Count());
        Assert.Equal(["/etc/bm/b.conf"], _backlog.Take().Paths);
        _backlog.GiveBack(kept); // the session died: the kept part is queued again, not lost
        Assert.Equal(["/etc/bm/a.conf", "/etc/bm/c.conf"], _backlog.Take().Paths.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void AFailingPathIsRetriedAfterADelayThatDoublesUpToTheCap()
    {
        _backlog.Add(["/etc/bm/big.bin"], false, _clock.GetUtcNow());
        var delays = new List<double>();
        for (int attempt = 0; attempt < 6; attempt++)
        {
            FailOnce("/etc/bm/big.bin");
            var due = _backlog.Retries["/etc/bm/big.bin"].Due;
            delays.Add((due - _clock.GetUtcNow()).TotalSeconds);
            Assert.False(_backlog.HasWork);                 // not before it is due
            _clock.Advance((int)(due - _clock.GetUtcNow()).TotalMilliseconds);
            Assert.True(_backlog.HasWork);
        }
        Assert.Equal([2, 4, 8, 16, 30, 30], delays);
        Assert.Equal(6, _backlog.Retries["/etc/bm/big.bin"].Attempts);
    }

    [Fact]
    public void ARetryRecordSurvivesBeingTakenAndGoesOnlyWhenThePathSucceeds()
    {
        _backlog.Add(["/etc/bm/a.conf"], false, _clock.GetUtcNow());
        FailOnce("/etc/bm/a.conf");
        _clock.Advance(2000);
        var round = _backlog.Take();
        Assert.Equal(1, _backlog.Retries["/etc/bm/a.conf"].Attempts); // in flight, still known
        Assert.Equal(1, _backlog.Count());
        _backlog.Complete(round, new Dictionary<string, string>());
        Assert.Empty(_backlog.Retries);
        Assert.Equal(0, _backlog.Count());
        Assert.Null(_backlog.OldestPending);
    }

    [Fact]
    public void AnEventOnAFailingPathTriesItAtOnceAndKeepsItsCount()
    {
        _backlog.Add(["/etc/bm/a.conf"], false, _clock.GetUtcNow());
        FailOnce("/etc/bm/a.conf");
        _backlog.Add(["/etc/bm/a.conf"], false, _clock.GetUtcNow());
        FailOnce("/etc/bm/a.conf");
        Assert.Equal(2, _backlog.Retries["/etc/bm/a.conf"].Attempts);
    }

    [Fact]
    public void TheLagOfAFailingPathCountsFromItsFirstChange()
    {
        var first = _clock.GetUtcNow();
        _backlog.Add(["/etc/bm/a.conf"], false, first);
        FailOnce("/etc/bm/a.conf");
        _clock.Advance(2000);
        FailOnce("/etc/bm/a.conf");
        Assert.Equal(first, _backlog.OldestPending);
        Assert.Equal(first, _backlog.Retries["/etc/bm/a.conf"].Since);
    }

    [Fact]
    public void ARoundInFlightCountsAsPendingAndAGivenBackRoundIsQueuedAgain()
    {
        var since = _clock.GetUtcNow();
        _backlog.Add(["/etc/bm/a.conf", "/etc/bm/b.conf"], false, since);
        var round = _backlog.Take();
        Assert.Equal(2, _backlog.Count());
        Assert.Equal(since, _backlog.OldestPending);
        Assert.False(_backlog.HasWork);
        _backlog.GiveBack(round);
        Assert.True(_backlog.HasWork);
        Assert.Equal(["/etc/bm/a.conf", "/etc/bm/b.conf"], _backlog.Take().Paths.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void RetryNowMakesEveryRetryDueAndAResyncClearsThoseThatDidNotFail()
    {
        _backlog.Add(["/etc/bm/a.conf", "/etc/bm/b.conf"], false, _clock.GetUtcNow());
        var round = _backlog.Take();
        _backlog.Complete(round, new Dictionary<string, string> { ["/etc/bm/a.conf"] = "a", ["/etc/bm/b.conf"] = "b" });
        Assert.False(_backlog.HasWork);
        _backlog.RetryNow();
        Assert.True(_backlog.HasWork);
        var resync = _backlog.Take(allRetries: true);
        _backlog.Complete(resync, Failed("/etc/bm/b.conf"), everything: true);
        Assert.Equal(["/etc/bm/b.conf"], _backlog.Retries.Keys);
        Assert.Equal(2, _backlog.Retries["/etc/bm/b.conf"].Attempts);
    }

    [Fact]
    public void ConflictsAreLeftOutOfTheCountWhenAsked()
    {
        _backlog.Add(["/etc/bm/a.conf", "/etc/bm/b.conf"], false, _clock.GetUtcNow());
        var round = _backlog.Take();
        _backlog.Complete(round, new Dictionary<string, string> { ["/etc/bm/a.conf"] = "conflict" });
        Assert.Equal(0, _backlog.Count(new HashSet<string> { "/etc/bm/a.conf" }));
        Assert.Equal(1, _backlog.Count());
    }

    [Fact]
    public void APathRefusedForLackOfRoomIsAskedAboutEveryRetryDelayAndSentAgainOnlyAtTheCap()
    {
        const string big = "/etc/bm/big.bin";
        _backlog.Add([big], false, _clock.GetUtcNow());
        _backlog.Complete(_backlog.Take(), Failed(big), spaceNeeded: new Dictionary<string, long> { [big] = 3 << 20 });
        var retry = _backlog.Retries[big];
        Assert.Equal((1, 3L << 20), (retry.Attempts, retry.SpaceNeeded));
        Assert.Equal(30, (retry.Due - _clock.GetUtcNow()).TotalSeconds); // sent again, whatever the room, at the cap
        Assert.Equal(2, (retry.Next - _clock.GetUtcNow()).TotalSeconds); // but asked about after 2 s

        int asked = 0;
        while (_backlog.Retries.ContainsKey(big))
        {
            Assert.False(_backlog.HasWork);
            _clock.Advance(2000);
            Assert.True(_backlog.HasWork);
            var round = _backlog.Take();
            Assert.Equal([big], round.Paths);
            if (_backlog.SpaceWaits.TryGetValue(big, out long needed))
            {
                Assert.Equal(3L << 20, needed);
                asked++; // still no room: held back, the next question due in 2 s
                _backlog.Complete(round, new Dictionary<string, string>(), held: new HashSet<string> { big });
                Assert.Equal((1, retry.Error), (_backlog.Retries[big].Attempts, _backlog.Retries[big].Error));
            }
            else
            {
                Assert.Equal(retry.Due, _clock.GetUtcNow()); // its schedule came: sent whatever the room
                _backlog.Complete(round, new Dictionary<string, string>());
            }
        }
        Assert.Equal(14, asked);
    }

    [Fact]
    public void RetryNowSendsAPathWaitingForRoomWithoutAsking()
    {
        _backlog.Add(["/etc/bm/big.bin"], false, _clock.GetUtcNow());
        _backlog.Complete(_backlog.Take(), Failed("/etc/bm/big.bin"), spaceNeeded: new Dictionary<string, long> { ["/etc/bm/big.bin"] = 1 << 20 });
        Assert.Single(_backlog.SpaceWaits);
        _backlog.RetryNow();
        Assert.Empty(_backlog.SpaceWaits);
        Assert.True(_backlog.HasWork);
    }
}
