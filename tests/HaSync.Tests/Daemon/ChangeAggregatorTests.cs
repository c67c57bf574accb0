using HaSync.Tests.Support;
using HaSync.Watching;

namespace HaSync.Tests.Daemon;

/// <summary>The aggregator's timing and escalation rules, on a fake clock.</summary>
public class ChangeAggregatorTests
{
    private readonly FakeClock _clock = new();
    private readonly ChangeAggregator _aggregator;

    public ChangeAggregatorTests() => _aggregator = new ChangeAggregator(_clock, new AggregatorOptions
    {
        QuietWindow = TimeSpan.FromMilliseconds(50),
        MaxDelay = TimeSpan.FromMilliseconds(1000),
        DirectoryLimit = 4,
        TotalLimit = 10,
    });

    private void Changed(string path) => _aggregator.Add(new WatchEvent(path, WatchEventKind.Changed));

    [Fact]
    public void APathIsReadyAfterTheQuietWindowNotBefore()
    {
        Changed("/etc/bm/a.conf");
        _clock.Advance(49);
        Assert.Null(_aggregator.TakeReady());
        Assert.Equal(TimeSpan.FromMilliseconds(1), _aggregator.NextReadyIn());
        _clock.Advance(1);
        var batch = _aggregator.TakeReady();
        Assert.NotNull(batch);
        Assert.Equal(["/etc/bm/a.conf"], batch.Paths);
        Assert.Null(_aggregator.TakeReady());
        Assert.Null(_aggregator.NextReadyIn());
    }

    [Fact]
    public void EachEventRestartsTheQuietWindow()
    {
        Changed("/etc/bm/a.conf");
        for (int i = 0; i < 5; i++)
        {
            _clock.Advance(40);
            Changed("/etc/bm/a.conf");
            Assert.Null(_aggregator.TakeReady());
        }
        _clock.Advance(50);
        Assert.NotNull(_aggregator.TakeReady());
    }

    [Fact]
    public void APathThatKeepsChangingIsForcedOutAfterTheMaximumDelay()
    {
        var first = _clock.GetUtcNow();
        Changed("/etc/bm/busy.log");
        for (int elapsed = 0; elapsed < 990; elapsed += 30)
        {
            _clock.Advance(30);
            Changed("/etc/bm/busy.log");
            Assert.Null(_aggregator.TakeReady());
        }
        _clock.Advance(30); // 1020 ms after the first event, 0 ms after the last
        var batch = _aggregator.TakeReady();
        Assert.NotNull(batch);
        Assert.Equal(["/etc/bm/busy.log"], batch.Paths);
        Assert.Equal(first, batch.OldestEvent);
    }

    [Fact]
    public void ManyPathsInOneDirectoryBecomeTheDirectory()
    {
        for (int i = 0; i < 5; i++)
            Changed($"/etc/bm/conf.d/{i}.conf");
        Changed("/etc/bm/other.conf");
        Changed("/etc/bm/conf.d/late.conf"); // absorbed by the pending directory
        _clock.Advance(50);
        var batch = _aggregator.TakeReady();
        Assert.NotNull(batch);
        Assert.Equal(["/etc/bm/conf.d", "/etc/bm/other.conf"], batch.Paths);
        Assert.False(batch.FullScan);
    }

    [Fact]
    public void ManyPathsInAllBecomeAFullScan()
    {
        for (int i = 0; i < 11; i++)
            Changed($"/etc/d{i}/f.conf");
        Assert.Equal(1, _aggregator.Count);
        _clock.Advance(50);
        var batch = _aggregator.TakeReady();
        Assert.NotNull(batch);
        Assert.True(batch.FullScan);
        Assert.Empty(batch.Paths);
    }

    [Fact]
    public void FilesWrittenAndClosedNeverEscalateHoweverMany()
    {
        // A burst of complete files (a tar x), all read in one pass: well over both limits, yet each is known path by path
        // and ready after the settle window; escalated, the burst would wait out the quiet window and be scanned whole.
        for (int i = 0; i < 30; i++)
        {
            Changed($"/etc/bm/conf.d/{i:D2}.conf"); // created
            _aggregator.Add(new WatchEvent($"/etc/bm/conf.d/{i:D2}.conf", WatchEventKind.Completed));
        }
        Assert.Equal(30, _aggregator.Count);
        _clock.Advance(2);
        var batch = _aggregator.TakeReady()!;
        Assert.False(batch.FullScan);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"/etc/bm/conf.d/{i:D2}.conf"), batch.Paths);
    }

    [Fact]
    public void AFileOpenedAgainCountsAgainTowardsTheDirectory()
    {
        for (int i = 0; i < 4; i++)
            _aggregator.Add(new WatchEvent($"/etc/bm/conf.d/{i}.conf", WatchEventKind.Completed));
        for (int i = 0; i < 4; i++)
            Changed($"/etc/bm/conf.d/{i}.conf"); // written again, not closed yet: 4 unsettled, at the limit
        Assert.Equal(4, _aggregator.Count);
        Changed("/etc/bm/conf.d/4.conf"); // the fifth
        Assert.Equal(1, _aggregator.Count);
        _clock.Advance(50);
        Assert.Equal(["/etc/bm/conf.d"], _aggregator.TakeReady()!.Paths);
    }

    [Fact]
    public void TakenPathsNoLongerCount()
    {
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 4; i++)
                Changed($"/etc/bm/conf.d/{round}-{i}.conf");
            _clock.Advance(50);
            Assert.Equal(4, _aggregator.TakeReady()!.Paths.Count); // 12 in all over the rounds: never a directory, nor a full scan
        }
    }

    [Fact]
    public void AnOverflowIsAFullScanThatAbsorbsLaterEvents()
    {
        Changed("/etc/bm/a.conf");
        _aggregator.Add(new WatchEvent("/", WatchEventKind.Overflow));
        _clock.Advance(30);
        Changed("/etc/bm/b.conf");
        _clock.Advance(30);
        Assert.Null(_aggregator.TakeReady()); // b.conf restarted the quiet window of the full scan
        _clock.Advance(20);
        var batch = _aggregator.TakeReady();
        Assert.NotNull(batch);
        Assert.True(batch.FullScan);
        Assert.Null(_aggregator.TakeReady());
    }

    [Fact]
    public void RemovalsComeLastSoARenameNeverLeavesTheFileMissing()
    {
        _aggregator.Add(new WatchEvent("/etc/bm/a.conf", WatchEventKind.Removed));
        _aggregator.Add(new WatchEvent("/etc/bm/z.conf", WatchEventKind.Changed));
        _aggregator.Add(new WatchEvent("/etc/bm/b.conf", WatchEventKind.Changed));
        _clock.Advance(50);
        Assert.Equal(["/etc/bm/b.conf", "/etc/bm/z.conf", "/etc/bm/a.conf"], _aggregator.TakeReady()!.Paths);
    }

    [Fact]
    public void AFileItsWriterIsDoneWithIsReadyAfterTheSettleWindowNotTheQuietOne()
    {
        Changed("/etc/bm/a.conf");                                                  // created, written
        _aggregator.Add(new WatchEvent("/etc/bm/a.conf", WatchEventKind.Completed)); // closed
        Assert.Null(_aggregator.TakeReady());
        Assert.Equal(TimeSpan.FromMilliseconds(2), _aggregator.NextReadyIn());
        _clock.Advance(2);
        Assert.Equal(["/etc/bm/a.conf"], _aggregator.TakeReady()!.Paths);
    }

    [Fact]
    public void AWriteAfterTheCloseAndARemovalWaitForTheQuietWindow()
    {
        _aggregator.Add(new WatchEvent("/etc/bm/a.conf", WatchEventKind.Completed));
        Changed("/etc/bm/a.conf"); // opened and written again: not done yet
        _aggregator.Add(new WatchEvent("/etc/bm/old.conf", WatchEventKind.Removed));
        _clock.Advance(2);
        Assert.Null(_aggregator.TakeReady());
        _clock.Advance(48);
        Assert.Equal(["/etc/bm/a.conf", "/etc/bm/old.conf"], _aggregator.TakeReady()!.Paths);
    }

    [Fact]
    public void ASaveByRenameIsReadyAtOnceAndTheTempFileWithIt()
    {
        // An editor's save: the temp file written and closed, then renamed over the target, all before the batch is taken.
        _aggregator.Add(new WatchEvent("/etc/bm/.a.conf.swx", WatchEventKind.Completed));
        _aggregator.Add(new WatchEvent("/etc/bm/.a.conf.swx", WatchEventKind.Removed));
        _aggregator.Add(new WatchEvent("/etc/bm/a.conf", WatchEventKind.Completed));
        _clock.Advance(2);
        Assert.Equal(["/etc/bm/a.conf"], _aggregator.TakeReady()!.Paths); // the target at once; the temp name's removal waits
        _clock.Advance(48);
        Assert.Equal(["/etc/bm/.a.conf.swx"], _aggregator.TakeReady()!.Paths);
    }

    [Fact]
    public void ADirectoryEventAbsorbsWhatIsPendingBelowIt()
    {
        Changed("/etc/bm/new/a.conf");
        _clock.Advance(10);
        Changed("/etc/bm/new");
        Changed("/etc/bm/new/b.conf");
        _clock.Advance(50);
        var batch = _aggregator.TakeReady()!;
        Assert.Equal(["/etc/bm/new"], batch.Paths);
        Assert.Equal(_clock.GetUtcNow().AddMilliseconds(-60), batch.OldestEvent);
    }

    [Fact]
    public void TheNextReadyTimeMayComeTooSoonButNeverTooLate()
    {
        // The aggregator keeps a lower bound on the soonest due time rather than a pass over every path per event.
        Changed("/etc/bm/a.conf");
        _clock.Advance(30);
        Changed("/etc/bm/a.conf");                                                   // a.conf now due at 80 ms, not 50
        Assert.Equal(TimeSpan.FromMilliseconds(20), _aggregator.NextReadyIn());     // too soon: its first due time
        _aggregator.Add(new WatchEvent("/etc/bm/b.conf", WatchEventKind.Completed)); // due at 32 ms: sooner still
        Assert.Equal(TimeSpan.FromMilliseconds(2), _aggregator.NextReadyIn());
        _clock.Advance(2);
        Assert.Equal(["/etc/bm/b.conf"], _aggregator.TakeReady()!.Paths);
        Assert.Equal(TimeSpan.FromMilliseconds(48), _aggregator.NextReadyIn());     // exact again after a pass
        _clock.Advance(47);
        Assert.Null(_aggregator.TakeReady());
        _clock.Advance(1);
        Assert.Equal(["/etc/bm/a.conf"], _aggregator.TakeReady()!.Paths);
        Assert.Null(_aggregator.NextReadyIn());
    }

    [Fact]
    public void TakeAllHandsOverWhatIsNotQuietYet()
    {
        Changed("/etc/bm/a.conf");
        Assert.Null(_aggregator.TakeReady());
        Assert.Equal(["/etc/bm/a.conf"], _aggregator.TakeAll().Paths);
        Assert.True(_aggregator.TakeAll().IsEmpty);
    }
}
