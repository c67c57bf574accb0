using HaSync.Protocol;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Tests.Support;

namespace HaSync.Tests.Sync;

/// <summary>The daemon's belief about a passive: what an unacknowledged push leaves, and how a manifest corrects it.</summary>
public class PassiveStateTests
{
    private static FileEntry File(string path, string content = "x") => TestTree.FileEntry(path, System.Text.Encoding.UTF8.GetBytes(content));
    private static FileEntry Dir(string path) => new() { Path = path, Kind = EntryKind.Directory, Mode = 0x1ed };

    [Fact]
    public void AnUnacknowledgedPushMakesThePathUncertainUntilTheManifestSaysWhatStandsThere()
    {
        var state = new PassiveState();
        state.Reset([Dir("/etc/bm"), File("/etc/bm/a.conf")]);
        state.Record(new PathDifference("/etc/bm/a.conf", PathStatus.Extra, null, File("/etc/bm/a.conf"), []), new Ack(AckStatus.Failed, "not confirmed on disk"));
        Assert.Equal(["/etc/bm/a.conf"], state.Uncertain);

        var drift = state.Relearn(["/etc/bm/a.conf"], []); // the delete was made after all
        Assert.Empty(state.Uncertain);
        Assert.Null(state.Get("/etc/bm/a.conf"));
        Assert.Equal(["/etc/bm/a.conf"], drift.Select(d => d.Path));
    }

    [Fact]
    public void RelearningASubtreeReplacesItWholeAndReportsEachDifference()
    {
        var state = new PassiveState();
        state.Reset([Dir("/etc/bm"), Dir("/etc/bm/a"), File("/etc/bm/a/old.conf"), File("/etc/bm/a/same.conf"), File("/etc/bm/b.conf")]);
        var drift = state.Relearn(["/etc/bm/a"], [Dir("/etc/bm/a"), File("/etc/bm/a/keep.conf"), File("/etc/bm/a/same.conf"), File("/etc/bm/b.conf", "outside the roots")]);
        Assert.Equal(["/etc/bm/a/keep.conf", "/etc/bm/a/old.conf"], drift.Select(d => d.Path));
        Assert.Equal(["/etc/bm", "/etc/bm/a", "/etc/bm/a/keep.conf", "/etc/bm/a/same.conf", "/etc/bm/b.conf"], state.All().Select(e => e.Path));
        Assert.Equal(File("/etc/bm/b.conf").Hash, state.Get("/etc/bm/b.conf")!.Hash); // outside the roots: untouched
    }

    [Fact]
    public void TheCoverOfPathsKeepsOnlyThoseNoOtherHolds()
    {
        Assert.Equal(["/etc/a", "/etc/a-b", "/etc/c"], TreeWalker.Cover(["/etc/a/x", "/etc/a-b", "/etc/a", "/etc/c", "/etc/a/y/z", "/etc/a-b/q"]));
        Assert.Equal(["/"], TreeWalker.Cover(["/etc/a", "/"]));
    }
}
