using System.Threading.Channels;
using HaSync.Daemon;
using HaSync.Interop;
using HaSync.Scanning;
using Microsoft.Extensions.Logging;

namespace HaSync.Watching;

/// <summary>What an event says happened at a path of the watched set. Events say where; the scan says what.</summary>
public enum WatchEventKind
{
    /// <summary>Something at the path was created, written, renamed in or had its metadata changed.</summary>
    Changed,
    /// <summary>A file at the path was closed after writing, or renamed into place: its writer is done with it.</summary>
    Completed,
    /// <summary>The path was deleted or renamed away.</summary>
    Removed,
    /// <summary>Events were lost (kernel queue overflow, a watch newly possible): the whole watched set must be scanned.</summary>
    Overflow,
}

/// <summary>One notification: a logical path of the watched set (with <see cref="WatchEventKind.Overflow"/>, "/").</summary>
public readonly record struct WatchEvent(string Path, WatchEventKind Kind);

/// <summary>
/// Watches the watched set with inotify and writes <see cref="WatchEvent"/>s to a channel, from one reader thread.
/// Directories are watched, never files: a listed file is seen through its parent's watch (filtered to its
/// name), so editors that save by rename keep being seen, and a listed directory's parent is watched too, so
/// the directory being replaced is seen. A directory created or renamed into the set is watched at once and
/// then reported, so the scan that follows finds files written into it before its watch existed. When the
/// kernel refuses a watch (limits) the watcher says which sysctl to raise, goes on with what it has, and
/// tries again every few seconds.
/// </summary>
public sealed class InotifyWatcher : IDisposable
{
    private const uint DirectoryMask = Inotify.IN_CLOSE_WRITE | Inotify.IN_MODIFY | Inotify.IN_ATTRIB | Inotify.IN_CREATE
        | Inotify.IN_DELETE | Inotify.IN_MOVED_FROM | Inotify.IN_MOVED_TO | Inotify.IN_DELETE_SELF | Inotify.IN_MOVE_SELF
        | Inotify.IN_ONLYDIR | Inotify.IN_DONT_FOLLOW | Inotify.IN_EXCL_UNLINK;
    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

    private readonly string _root;
    private readonly IReadOnlyList<string> _paths;
    private readonly PathFilter _exclude;
    private readonly ChannelWriter<WatchEvent> _events;
    private readonly ILogger _log;
    private readonly Dictionary<int, WatchedDirectory> _watches = [];   // reader thread only (and Start, before it runs)
    private readonly HashSet<string> _unwatched = new(StringComparer.Ordinal); // listed paths waiting for a retry
    private readonly Lock _problemsLock = new();
    private readonly Dictionary<string, string> _problems = new(StringComparer.Ordinal);
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _fd = -1;
    private int _wakeFd = -1;
    private volatile bool _stopping;
    private Thread? _thread;
    private int _watchCount;

    private sealed class WatchedDirectory(string logical, ulong device, ulong inode)
    {
        public string Logical { get; set; } = logical; // where the directory is now, as far as the events read so far say
        public ulong Device { get; } = device;
        public ulong Inode { get; } = inode;           // the kernel keys a watch by inode: one directory, one watch, wherever it moves
        public bool AllChildren { get; set; }
        public HashSet<string> Names { get; } = new(StringComparer.Ordinal);
    }

    /// <param name="root">The node's root (the configuration's source_root).</param>
    /// <param name="paths">The listed logical paths.</param>
    /// <param name="exclude">Names never reported.</param>
    /// <param name="events">Where events go.</param>
    /// <param name="log">Watch problems are logged here.</param>
    public InotifyWatcher(string root, IReadOnlyList<string> paths, PathFilter exclude, ChannelWriter<WatchEvent> events, ILogger log)
    {
        _root = root;
        _paths = paths;
        _exclude = exclude;
        _events = events;
        _log = log;
    }

    /// <summary>Directories watched now.</summary>
    public int WatchCount => Volatile.Read(ref _watchCount);

    /// <summary>What cannot be watched now, and why (empty when everything is).</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (_problemsLock)
                return _problems.Values.ToList();
        }
    }

    /// <summary>Sets up the watches and starts the reader thread.</summary>
    public void Start()
    {
        _wakeFd = Inotify.WakeHandle();
        TryInit();
        _thread = new Thread(Run) { IsBackground = true, Name = "inotify reader" };
        _thread.Start();
    }

    private void TryInit()
    {
        _fd = Inotify.Init(out int errno);
        if (_fd < 0)
        {
            Problem("inotify", errno == Inotify.EMFILE
                ? $"cannot create an inotify instance: the per-user limit is reached (fs.inotify.max_user_instances = {Inotify.Limit("max_user_instances")}); raise it with sysctl. Watching nothing until then."
                : $"cannot create an inotify instance: {new System.ComponentModel.Win32Exception(errno).Message}. Watching nothing until then.");
            return;
        }
        Solved("inotify");
        foreach (string path in _paths)
            WatchListed(path);
    }

    private void Run()
    {
        long nextRetry = Environment.TickCount64 + (long)RetryInterval.TotalMilliseconds;
        while (!_stopping)
        {
            bool retrying = _fd < 0 || _unwatched.Count > 0;
            int timeout = retrying ? (int)Math.Max(0, nextRetry - Environment.TickCount64) : -1;
            // Without an inotify descriptor, poll the wake handle alone: it only times out or says stop.
            bool readable = Inotify.Wait(_fd >= 0 ? _fd : _wakeFd, _wakeFd, timeout) && _fd >= 0;
            if (_stopping)
                break;
            try
            {
                if (readable)
                    foreach (var e in Inotify.Read(_fd, _buffer))
                        Handle(e);
                if (retrying && Environment.TickCount64 >= nextRetry)
                {
                    Retry();
                    nextRetry = Environment.TickCount64 + (long)RetryInterval.TotalMilliseconds;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Never let the reader thread die (that would end the daemon): start over with a new instance,
                // and a full scan once it is up, since events may have been lost.
                Problem("inotify", $"watching failed: {e.Message}; starting over in {RetryInterval.TotalSeconds:F0} s");
                Inotify.Close(_fd);
                _fd = -1;
                _watches.Clear();
                Interlocked.Exchange(ref _watchCount, 0);
                nextRetry = Environment.TickCount64 + (long)RetryInterval.TotalMilliseconds;
            }
        }
    }

    private void Retry()
    {
        if (_fd < 0)
        {
            TryInit();
            if (_fd >= 0)
                Emit("/", WatchEventKind.Overflow);
            return;
        }
        foreach (string path in _unwatched.ToList())
            if (WatchListed(path))
                Emit(path, WatchEventKind.Changed); // what happened while it was not watched
    }

    /// <summary>Watches a listed path: its parent (for its name) and, if it is a directory, the tree below it.</summary>
    private bool WatchListed(string logical)
    {
        if (logical != "/")
        {
            string parent = TreeWalker.Parent(logical);
            if (!AddWatch(parent, allChildren: false, name: TreeWalker.NameOf(logical), listed: logical))
                return false;
        }
        if (PosixFiles.TryLstat(TreeWalker.FullPath(_root, logical), out var st) && PosixFiles.KindOf(st) == EntryKind.Directory
            && !WatchTree(logical, listed: logical))
            return false;
        _unwatched.Remove(logical);
        Solved(logical);
        return true;
    }

    /// <summary>Watches a directory and every directory below it (not through symlinks, not into excluded ones).</summary>
    private bool WatchTree(string logical, string listed)
    {
        if (!AddWatch(logical, allChildren: true, name: null, listed))
            return false;
        IEnumerable<string> children;
        try
        {
            children = Directory.EnumerateFileSystemEntries(TreeWalker.FullPath(_root, logical)).Select(Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true; // gone or unreadable: its parent's events and the scan say what became of it
        }
        foreach (string name in children)
        {
            string child = TreeWalker.Child(logical, name);
            if (!_exclude.Matches(child) && PosixFiles.TryLstat(TreeWalker.FullPath(_root, child), out var st)
                && PosixFiles.KindOf(st) == EntryKind.Directory && !WatchTree(child, listed))
                return false;
        }
        return true;
    }

    private bool AddWatch(string logical, bool allChildren, string? name, string listed)
    {
        string full = TreeWalker.FullPath(_root, logical);
        int wd = Inotify.AddWatch(_fd, full, DirectoryMask, out int errno);
        if (wd < 0)
        {
            if (errno is Inotify.ENOENT or Inotify.ENOTDIR && !allChildren)
            {
                Problem(listed, $"{listed}: cannot be watched: its directory {full} does not exist; trying again every {RetryInterval.TotalSeconds:F0} s");
                _unwatched.Add(listed);
                return false;
            }
            if (errno is Inotify.ENOENT or Inotify.ENOTDIR)
                return true; // a directory inside the set vanished while we set up: its parent reports that
            Problem(listed, errno == Inotify.ENOSPC
                ? $"{full}: cannot be watched: the inotify watch limit is reached (fs.inotify.max_user_watches = {Inotify.Limit("max_user_watches")}); raise it with sysctl. {listed} is not watched until then; retrying every {RetryInterval.TotalSeconds:F0} s"
                : $"{full}: cannot be watched: {new System.ComponentModel.Win32Exception(errno).Message}; retrying every {RetryInterval.TotalSeconds:F0} s");
            _unwatched.Add(listed);
            return false;
        }
        if (!_watches.TryGetValue(wd, out var watched))
        {
            PosixFiles.TryLstat(full, out var st);
            _watches[wd] = watched = new WatchedDirectory(logical, st.st_dev, st.st_ino);
            Interlocked.Increment(ref _watchCount);
        }
        else if (watched.Logical != logical)
            Moved(watched.Logical, logical);
        watched.AllChildren |= allChildren;
        if (name is not null)
            watched.Names.Add(name);
        return true;
    }

    private void Handle(Inotify.Event e)
    {
        if ((e.Mask & Inotify.IN_Q_OVERFLOW) != 0)
        {
            _log.QueueOverflow(Inotify.Limit("max_queued_events"));
            Emit("/", WatchEventKind.Overflow);
            return;
        }
        if (!_watches.TryGetValue(e.Wd, out var dir))
            return; // a watch already dropped
        if ((e.Mask & Inotify.IN_IGNORED) != 0)
        {
            Forget(e.Wd);
            return;
        }
        if (e.Name.Length == 0)
        {
            // The watched directory itself. Moved to where an earlier enumeration already found it (and re-keyed
            // the watch): keep it. Replaced or removed: drop the watch and those below it (a moved one would follow
            // the inode out of the set) and let the scan and the parent's events say what stands there now.
            if ((e.Mask & (Inotify.IN_DELETE_SELF | Inotify.IN_MOVE_SELF)) != 0 && !StillAt(dir))
            {
                UnwatchTree(dir.Logical);
                if (InWatchedSet(dir.Logical))
                    Emit(dir.Logical, WatchEventKind.Changed);
                foreach (string listed in _paths.Where(p => TreeWalker.Within(p, dir.Logical)))
                    if (!WatchListed(listed)) // the listed path or its parent went away: watch again when it is back
                        _unwatched.Add(listed);
            }
            return;
        }
        string child = TreeWalker.Child(dir.Logical, e.Name);
        if (!dir.AllChildren && !dir.Names.Contains(e.Name) || !InWatchedSet(child))
            return;
        if (_exclude.Matches(child))
        {
            // Never shipped, but made, renamed or removed it moved its directory's time: the scan compares that directory.
            if ((e.Mask & (Inotify.IN_CREATE | Inotify.IN_DELETE | Inotify.IN_MOVED_FROM | Inotify.IN_MOVED_TO)) != 0)
                Emit(child, WatchEventKind.Changed);
            return;
        }
        bool removed = (e.Mask & (Inotify.IN_DELETE | Inotify.IN_MOVED_FROM)) != 0;
        if ((e.Mask & Inotify.IN_ISDIR) != 0)
        {
            if (removed)
                UnwatchTree(child);
            else if ((e.Mask & (Inotify.IN_CREATE | Inotify.IN_MOVED_TO)) != 0)
                WatchTree(child, _paths.First(p => TreeWalker.Within(child, p)));
        }
        bool completed = (e.Mask & Inotify.IN_CLOSE_WRITE) != 0 || (e.Mask & (Inotify.IN_MOVED_TO | Inotify.IN_ISDIR)) == Inotify.IN_MOVED_TO;
        Emit(child, removed ? WatchEventKind.Removed : completed ? WatchEventKind.Completed : WatchEventKind.Changed);
    }

    /// <summary>A watched directory found at <paramref name="to"/> (inotify_add_watch returned its watch): it and the
    /// directories below it were moved there from <paramref name="from"/>, before the events that say so were read.
    /// Those events will name the old path: they must not find this watch there and drop it.</summary>
    private void Moved(string from, string to)
    {
        foreach (var watched in _watches.Values.Where(w => TreeWalker.Within(w.Logical, from)))
            watched.Logical = watched.Logical.Length == from.Length ? to : TreeWalker.Child(to, watched.Logical[(from.Length + 1)..]); // "/" never moves
    }

    /// <summary>True when the directory of a watch still stands at the path the watch is keyed by.</summary>
    private bool StillAt(WatchedDirectory dir) =>
        PosixFiles.TryLstat(TreeWalker.FullPath(_root, dir.Logical), out var st) && st.st_dev == dir.Device && st.st_ino == dir.Inode;

    private void UnwatchTree(string logical)
    {
        foreach (var (wd, watched) in _watches.Where(w => TreeWalker.Within(w.Value.Logical, logical)).ToList())
        {
            Inotify.RemoveWatch(_fd, wd);
            Forget(wd);
        }
    }

    private void Forget(int wd)
    {
        if (_watches.Remove(wd))
            Interlocked.Decrement(ref _watchCount);
    }

    private void Emit(string path, WatchEventKind kind) => _events.TryWrite(new WatchEvent(path, kind)); // unbounded channel

    private bool InWatchedSet(string logical) => _paths.Any(p => TreeWalker.Within(logical, p));

    private void Problem(string key, string message)
    {
        lock (_problemsLock)
        {
            if (_problems.TryGetValue(key, out string? known) && known == message)
                return;
            _problems[key] = message;
        }
        _log.WatchProblem(message);
    }

    private void Solved(string key)
    {
        bool had;
        lock (_problemsLock)
            had = _problems.Remove(key);
        if (had)
            _log.WatchRestored(key);
    }

    /// <summary>Stops the reader thread and closes the descriptors.</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_wakeFd >= 0)
            Inotify.Wake(_wakeFd);
        _thread?.Join();
        if (_fd >= 0)
            Inotify.Close(_fd);
        if (_wakeFd >= 0)
            Inotify.Close(_wakeFd);
        _fd = _wakeFd = -1;
    }
}
