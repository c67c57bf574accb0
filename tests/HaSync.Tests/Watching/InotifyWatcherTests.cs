using System.Threading.Channels;
using HaSync.Scanning;
using HaSync.Tests.Support;
using HaSync.Watching;

namespace HaSync.Tests.Watching;

/// <summary>The watcher's bookkeeping through moves, on real inotify: a watch must follow its directory wherever the
/// events say it went, or every later change inside it is lost without a word.</summary>
public class InotifyWatcherTests
{
    private static async Task<bool> SeenAsync(ChannelReader<WatchEvent> events, string path, TimeSpan patience)
    {
        using var timeout = new CancellationTokenSource(patience);
        try
        {
            while (true)
            {
                var e = await events.ReadAsync(timeout.Token);
                if (e.Path == path || e.Kind == WatchEventKind.Overflow)
                    return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static int DirectoriesBelow(string dir) => 1 + Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Count();

    [Fact]
    public async Task ADirectoryMovedIntoADirectoryCreatedJustBeforeKeepsItsWatch()
    {
        using var tmp = new TempDir();
        string w = tmp.File("etc/w");
        var events = Channel.CreateUnbounded<WatchEvent>();
        for (int i = 0; i < 5; i++)
            Directory.CreateDirectory(Path.Join(w, $"a{i}/x/deeper"));
        using var watcher = new InotifyWatcher(tmp.Path, ["/etc/w"], PathFilter.None, events.Writer, new ListLogger());
        watcher.Start();
        for (int i = 0; i < 5; i++)
        {
            // No pause between the two: the new directory's enumeration finds x before the move's events are read.
            Directory.CreateDirectory(Path.Join(w, $"b{i}"));
            Directory.Move(Path.Join(w, $"a{i}/x"), Path.Join(w, $"b{i}/x"));
            await Task.Delay(300);
            while (events.Reader.TryRead(out _)) { }
            File.WriteAllText(Path.Join(w, $"b{i}/x/deeper/new.conf"), "hi\n");
            Assert.True(await SeenAsync(events.Reader, $"/etc/w/b{i}/x/deeper/new.conf", TimeSpan.FromSeconds(5)), $"round {i}: the write inside the moved directory was not seen");
        }
        Assert.Equal(DirectoriesBelow(w) + 1, watcher.WatchCount); // every directory, and /etc (the listed path's parent)
    }

    [Fact]
    public async Task ADirectoryMovedAwayAndBackIsWatchedAgainAndOneMovedOutIsNot()
    {
        using var tmp = new TempDir();
        string w = tmp.File("etc/w");
        Directory.CreateDirectory(Path.Join(w, "a/sub"));
        Directory.CreateDirectory(tmp.File("etc/outside"));
        var events = Channel.CreateUnbounded<WatchEvent>();
        using var watcher = new InotifyWatcher(tmp.Path, ["/etc/w"], PathFilter.None, events.Writer, new ListLogger());
        watcher.Start();
        Directory.Move(Path.Join(w, "a"), tmp.File("etc/outside/a"));
        await Task.Delay(200);
        Assert.Equal(DirectoriesBelow(w) + 1, watcher.WatchCount);
        Directory.Move(tmp.File("etc/outside/a"), Path.Join(w, "c"));
        await Task.Delay(200);
        while (events.Reader.TryRead(out _)) { }
        File.WriteAllText(Path.Join(w, "c/sub/back.conf"), "hi\n");
        Assert.True(await SeenAsync(events.Reader, "/etc/w/c/sub/back.conf", TimeSpan.FromSeconds(5)));
        Assert.Equal(DirectoriesBelow(w) + 1, watcher.WatchCount);
    }

    [Fact]
    public async Task AFileIsCompletedWhenClosedAfterWritingOrRenamedIntoPlaceAndNotWhileStillOpen()
    {
        using var tmp = new TempDir();
        string w = tmp.File("etc/w");
        Directory.CreateDirectory(w);
        var events = Channel.CreateUnbounded<WatchEvent>();
        using var watcher = new InotifyWatcher(tmp.Path, ["/etc/w"], PathFilter.None, events.Writer, new ListLogger());
        watcher.Start();
        async Task<List<WatchEventKind>> KindsAsync(string path)
        {
            await Task.Delay(300);
            var kinds = new List<WatchEventKind>();
            while (events.Reader.TryRead(out var e))
                if (e.Path == path)
                    kinds.Add(e.Kind);
            return kinds;
        }

        var open = new FileStream(Path.Join(w, "log"), FileMode.Create, FileAccess.Write);
        open.Write("still being written\n"u8);
        open.Flush();
        Assert.DoesNotContain(WatchEventKind.Completed, await KindsAsync("/etc/w/log"));
        await open.DisposeAsync();
        Assert.Equal(WatchEventKind.Completed, (await KindsAsync("/etc/w/log")).Last());

        File.WriteAllText(Path.Join(w, ".tmp"), "new content\n");
        await KindsAsync("/etc/w/.tmp");
        File.Move(Path.Join(w, ".tmp"), Path.Join(w, "target"));
        Assert.Equal([WatchEventKind.Completed], await KindsAsync("/etc/w/target"));

        Directory.CreateDirectory(tmp.File("etc/elsewhere"));
        Directory.Move(tmp.File("etc/elsewhere"), Path.Join(w, "dir")); // a directory renamed in: its scan says what it holds
        Assert.DoesNotContain(WatchEventKind.Completed, await KindsAsync("/etc/w/dir"));
    }
}
