using HaSync.Interop;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>A path the agent will not touch, whatever the frames say.</summary>
public sealed class ConfinementException(string message) : HaSyncException(message);

/// <summary>
/// The agent's own idea of what it may write: a root and an allow-list, both from its command line (an
/// authorized_keys forced command), never from the sender. A logical path must be absolute and normalised
/// (no empty, "." or ".." segment, no NUL), equal to or below an allowed path, and reached without passing
/// through a symlink or a non-directory below the root: writing through a link could leave the allowed set.
/// Writes find their directory below a descriptor on the root, held from the start: <see cref="OpenParent(string, bool)"/> resolves
/// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or, where the kernel lacks it, one
/// openat(O_NOFOLLOW | O_DIRECTORY) per component; either way no link is followed, whatever a local user swaps in.
/// </summary>
public sealed class PathGuard
{
    private const int MaxPathLength = 4096;
    private readonly int _rootDescriptor; // O_PATH on the root: every write resolves below it
    private bool _openat2;                // off after the first ENOSYS (a kernel before 5.6), or when told
    private readonly string _root;
    private readonly string[] _allowed;
    private readonly string[] _forbidden;
    private readonly (ulong Device, ulong Inode)[] _forbiddenDirectories; // the same, by identity: a bind mount has another spelling
    private readonly (ulong Device, ulong Inode) _rootDirectory;
    private readonly HashSet<(ulong Device, ulong Inode)> _placed = []; // directories found below the root and outside the state lately
    private long _placedSince = Environment.TickCount64;
    private const long PlacedForMs = 1000;
    // The directories opened lately, by logical path: a burst writes many entries into few directories, and each
    // resolution costs an openat2, an fstat and a close. One held here receives entries where it now stands, as a
    // batch's temp files, renamed in their directory's descriptor at the commit, always have (see CheckPlace); so they
    // are let go at each commit, when the agent removes a directory, and after a second.
    private readonly Dictionary<string, TreeDirectory> _opened = new(StringComparer.Ordinal);
    private long _openedSince = Environment.TickCount64;
    private const int MaxOpened = 64;

    /// <summary>Creates the guard; the root must be an existing directory. Nothing at or below a
    /// <paramref name="forbidden"/> directory (the agent's own state) is ever written, whatever the allow-list says.</summary>
    /// <param name="root">The passive tree's root.</param>
    /// <param name="allowed">The allowed logical paths (none: everything below the root).</param>
    /// <param name="forbidden">Directories never written (the agent's state).</param>
    /// <param name="useOpenat2">False: resolve by the per-component walk alone (as on a kernel without openat2).</param>
    public PathGuard(string root, IReadOnlyList<string> allowed, IReadOnlyList<string>? forbidden = null, bool useOpenat2 = true)
    {
        _openat2 = useOpenat2;
        // Links resolved, as the root's are: a state directory spelled through a link to the root is still found inside it.
        _forbidden = (forbidden ?? []).Select(f => LibcAt.RealPath(f) ?? Path.TrimEndingDirectorySeparator(Path.GetFullPath(f))).ToArray();
        string full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
            throw new ConfinementException($"--root {root}: not an existing directory");
        _root = new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full; // the root itself may be a link
        _allowed = allowed.Count == 0 ? ["/"] : allowed.Select(a => Normalise(a, "--allow")).ToArray();
        _rootDescriptor = LibcAt.OpenAt(LibcAt.AT_FDCWD, _root, LibcAt.O_PATH | LibcAt.O_DIRECTORY);
        if (_rootDescriptor < 0)
            throw new ConfinementException($"--root {root}: cannot open: {LibcAt.Describe(-_rootDescriptor)}");
        _rootDirectory = IdentityOf(_rootDescriptor);
        _forbiddenDirectories = _forbidden.Select(f => Mono.Unix.Native.Syscall.stat(f, out var st) == 0 ? (st.st_dev, st.st_ino) : default)
            .Where(id => id != default).ToArray();
    }

    /// <summary>The root, links resolved.</summary>
    public string Root => _root;

    /// <summary>The allowed logical paths.</summary>
    public IReadOnlyList<string> Allowed => _allowed;

    /// <summary>Checks <paramref name="logicalPath"/> (syntax, allow-list, state directory) and returns where it is on this
    /// node, for messages and the journal: nothing is looked up (<see cref="OpenParent(string, bool)"/> does that, below the root's descriptor).</summary>
    /// <exception cref="ConfinementException">Malformed, outside the allowed set, or in the state directory.</exception>
    public string Locate(string logicalPath)
    {
        string path = Normalise(logicalPath, "path");
        bool allowed = false;
        foreach (string a in _allowed) // loops, not lambdas: this runs for every request
            allowed |= TreeWalker.Within(path, a);
        if (!allowed)
            throw new ConfinementException($"{logicalPath}: outside the allowed paths ({string.Join(", ", _allowed)})");
        string full = TreeWalker.FullPath(_root, path);
        foreach (string state in _forbidden)
            if (Under(full, state))
                throw new ConfinementException($"{logicalPath}: inside the agent's state directory {state}; refusing to write there");
        return full;
    }

    /// <summary><paramref name="path"/> is <paramref name="directory"/> or below it; unlike <see cref="TreeWalker.Within"/>,
    /// "/" holds only itself (the state directory check has always read so).</summary>
    private static bool Under(string path, string directory) =>
        path.StartsWith(directory, StringComparison.Ordinal) && (path.Length == directory.Length || path[directory.Length] == '/');

    /// <summary>True when <paramref name="directory"/> is one of the directories never written (the agent's state), by device and
    /// inode: the manifest walk leaves it out.</summary>
    public bool IsForbidden(TreeDirectory directory) => _forbiddenDirectories.Contains(directory.Identity);

    /// <summary>The root directory itself, opened anew (the caller disposes it).</summary>
    public TreeDirectory OpenRoot()
    {
        int fd = LibcAt.OpenAt(_rootDescriptor, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
        return fd >= 0 ? new TreeDirectory(fd, _root) : throw new IOException($"{_root}: cannot open the root: {LibcAt.Describe(-fd)}");
    }

    /// <summary>Checks <paramref name="logicalPath"/> (not the root) and opens the directory that holds it, below the root's
    /// descriptor. With <paramref name="create"/>, missing directories on the way are made (0755, the sender sets their
    /// metadata when it gets to them); without, null when no directory stands there (nothing to read, a delete done).</summary>
    /// <exception cref="ConfinementException">Malformed, outside the allowed set, in the state directory, or (when
    /// creating) behind a symlink or a file.</exception>
    public TreeDirectory? OpenParent(string logicalPath, bool create) => OpenParent(logicalPath, create, out _);

    /// <summary><see cref="OpenParent(string, bool)"/>, and the lstat of the path's own entry in that directory, as the
    /// check found it (null when absent): the caller's first look at it, without a second lstat.</summary>
    public TreeDirectory? OpenParent(string logicalPath, bool create, out Mono.Unix.Native.Stat? entry)
    {
        entry = null;
        Locate(logicalPath);
        string parentPath = TreeWalker.Parent(logicalPath);
        if (Environment.TickCount64 - _openedSince > PlacedForMs)
            ForgetOpened();
        var parent = _opened.TryGetValue(parentPath, out var held) ? held.Share() : Resolve(logicalPath, parentPath, create);
        if (parent is null)
            return null;
        try
        {
            // The path itself may be the state directory, under another spelling (a bind mount): its metadata is not the sender's.
            entry = parent.Entry(TreeWalker.NameOf(logicalPath));
            if (entry is { } st && _forbiddenDirectories.Contains((st.st_dev, st.st_ino)))
                throw new ConfinementException($"{logicalPath}: is the agent's state directory; refusing to write there");
        }
        catch
        {
            parent.Dispose();
            throw;
        }
        return parent;
    }

    /// <summary>Lets go of the directories <see cref="OpenParent(string, bool, out Mono.Unix.Native.Stat?)"/> keeps: the
    /// agent calls this at each commit, and before it removes a directory (one it may hold).</summary>
    public void ForgetOpened()
    {
        foreach (var directory in _opened.Values)
            directory.Dispose();
        _opened.Clear();
        _openedSince = Environment.TickCount64;
    }

    /// <summary>Opens <paramref name="parentPath"/>, the directory of <paramref name="logicalPath"/>, below the root's
    /// descriptor, checks where it stands, and keeps it for the requests that follow.</summary>
    private TreeDirectory? Resolve(string logicalPath, string parentPath, bool create)
    {
        var segments = logicalPath.Split('/', StringSplitOptions.RemoveEmptyEntries)[..^1];
        TreeDirectory? parent = segments.Length == 0 ? OpenRoot() : null;
        if (parent is null && _openat2)
        {
            int fd = LibcAt.OpenBeneath(_rootDescriptor, parentPath[1..], LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
            if (fd >= 0)
                parent = new TreeDirectory(fd, TreeWalker.FullPath(_root, parentPath));
            else if (-fd == LibcAt.ENOSYS)
                _openat2 = false;
            // Otherwise something is missing or in the way: the walk says what, and makes what is missing.
        }
        parent ??= Walk(segments, logicalPath, create);
        if (parent is null)
            return null;
        try
        {
            CheckPlace(parent, segments.Length, logicalPath);
        }
        catch
        {
            parent.Dispose();
            throw;
        }
        if (_opened.Count >= MaxOpened)
            ForgetOpened();
        _opened[parentPath] = parent.Share();
        return parent;
    }

    /// <summary>Goes up from <paramref name="directory"/>, <paramref name="depth"/> levels below the root, by "..": it must
    /// meet the root, and no state directory on the way (by device and inode, whatever mounts spell it as).</summary>
    /// <remarks>A directory a local user moves out from under the root after this check is still one they own: what the
    /// agent then does in it (temp files, renames, deletes) lands where that user could write anyway. So a directory found
    /// in place is taken as such for a second (a burst writes many files into few directories): only root can move a
    /// directory into the state directory, which is root's alone.</remarks>
    private void CheckPlace(TreeDirectory directory, int depth, string logicalPath)
    {
        var self = directory.Identity;
        if (Environment.TickCount64 - _placedSince > PlacedForMs)
        {
            _placed.Clear();
            _placedSince = Environment.TickCount64;
        }
        if (_placed.Contains(self))
            return;
        int fd = LibcAt.OpenAt(directory.Descriptor, ".", LibcAt.O_PATH | LibcAt.O_DIRECTORY);
        try
        {
            for (int up = 0; fd >= 0; up++)
            {
                var id = IdentityOf(fd);
                if (_forbiddenDirectories.Contains(id))
                    throw new ConfinementException($"{logicalPath}: inside the agent's state directory; refusing to write there");
                if (id == _rootDirectory)
                {
                    _placed.Add(self);
                    return;
                }
                if (up == depth)
                    break;
                int above = LibcAt.OpenAt(fd, "..", LibcAt.O_PATH | LibcAt.O_DIRECTORY);
                Libc.close(fd);
                fd = above;
            }
            throw new ConfinementException($"{logicalPath}: {directory.FullPath} was moved from under the root while it was opened; left for the next try");
        }
        finally
        {
            if (fd >= 0)
                Libc.close(fd);
        }
    }

    private static (ulong Device, ulong Inode) IdentityOf(int fd) =>
        Mono.Unix.Native.Syscall.fstat(fd, out var st) == 0 ? (st.st_dev, st.st_ino) : throw new IOException($"fstat failed: {Mono.Unix.Native.Stdlib.GetLastError()}");

    /// <summary>One openat(O_NOFOLLOW | O_DIRECTORY) per component, from the root's descriptor.</summary>
    private TreeDirectory? Walk(string[] segments, string logicalPath, bool create)
    {
        var current = OpenRoot();
        string logical = "/";
        try
        {
            foreach (string segment in segments)
            {
                logical = TreeWalker.Child(logical, segment);
                var next = current.OpenDirectory(segment);
                if (next is null && create && current.Entry(segment) is null)
                {
                    try
                    {
                        current.MakeDirectory(segment, 0x1ed); // 0755
                    }
                    catch (IOException) when (current.Entry(segment) is not null)
                    {
                        // made meanwhile by someone else: look at what stands there now
                    }
                    next = current.OpenDirectory(segment);
                }
                if (next is null)
                {
                    if (!create)
                        return null;
                    string full = TreeWalker.FullPath(_root, logical);
                    throw new ConfinementException(current.Entry(segment) is { } st && PosixFiles.KindOf(st) == EntryKind.Symlink
                        ? $"{logicalPath}: refusing to write through the symlink {full}"
                        : $"{logicalPath}: {full} is not a directory");
                }
                current.Dispose();
                current = next;
            }
            var found = current;
            current = null!;
            return found;
        }
        finally
        {
            current?.Dispose();
        }
    }

    /// <summary>True for the root of the node ("/"), which the agent never deletes or replaces.</summary>
    public static bool IsRoot(string logicalPath) => logicalPath == "/";

    private static string Normalise(string logicalPath, string what)
    {
        if (logicalPath.Length == 0 || logicalPath.Length > MaxPathLength)
            throw new ConfinementException($"{what} of {logicalPath.Length} characters: must be 1..{MaxPathLength}");
        if (logicalPath[0] != '/')
            throw new ConfinementException($"{what} '{logicalPath}': not absolute");
        if (logicalPath.Contains('\0'))
            throw new ConfinementException($"{what} '{logicalPath.Replace("\0", "\\0")}': contains NUL");
        if (logicalPath == "/")
            return "/";
        var rest = logicalPath.AsSpan(1);
        foreach (var range in rest.Split('/'))
            if (rest[range] is "" or "." or "..")
                throw new ConfinementException($"{what} '{logicalPath}': empty, '.' or '..' segment");
        return logicalPath;
    }
}
