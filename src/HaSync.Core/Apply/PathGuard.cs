using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>A path the agent will not touch, whatever the frames say.</summary>
public sealed class ConfinementException(string message) : HaSyncException(message);

/// <summary>
/// The agent's own idea of what it may write: a root and an allow-list, both from its command line (an
/// authorized_keys forced command), never from the sender. A logical path must be absolute and normalised
/// (no empty, "." or ".." segment, no NUL), equal to or below an allowed path, and reached without passing
/// through a symlink or a non-directory below the root: writing through a link could leave the allowed set.
/// </summary>
public sealed class PathGuard
{
    private const int MaxPathLength = 4096;
    private readonly string _root;
    private readonly string[] _allowed;
    private readonly string[] _forbidden;

    /// <summary>Creates the guard; the root must be an existing directory. Nothing at or below a
    /// <paramref name="forbidden"/> directory (the agent's own state) is ever written, whatever the allow-list says.</summary>
    public PathGuard(string root, IReadOnlyList<string> allowed, IReadOnlyList<string>? forbidden = null)
    {
        _forbidden = (forbidden ?? []).Select(f => Path.TrimEndingDirectorySeparator(Path.GetFullPath(f))).ToArray();
        string full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
            throw new ConfinementException($"--root {root}: not an existing directory");
        _root = new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full; // the root itself may be a link
        _allowed = allowed.Count == 0 ? ["/"] : allowed.Select(a => Normalise(a, "--allow")).ToArray();
    }

    /// <summary>The root, links resolved.</summary>
    public string Root => _root;

    /// <summary>The allowed logical paths.</summary>
    public IReadOnlyList<string> Allowed => _allowed;

    /// <summary>Checks <paramref name="logicalPath"/> and returns where it is on this node.</summary>
    /// <exception cref="ConfinementException">Malformed, outside the allowed set, or behind a symlink.</exception>
    public string Resolve(string logicalPath) => Check(logicalPath, out _) is { } blocked ? throw new ConfinementException(blocked) : TreeWalker.FullPath(_root, logicalPath);

    /// <summary>For a path that is only read or removed: false when no entry of the tree can stand there (a parent is
    /// missing, or is a file or a symlink): there is nothing to read, and a delete is already done.</summary>
    /// <exception cref="ConfinementException">Malformed or outside the allowed set.</exception>
    public bool TryResolveExisting(string logicalPath, out string fullPath)
    {
        fullPath = "";
        if (Check(logicalPath, out bool missingParent) is not null || missingParent)
            return false;
        fullPath = TreeWalker.FullPath(_root, logicalPath);
        return true;
    }

    /// <summary>Why nothing may be done at <paramref name="logicalPath"/> below the root, or null; throws when it is malformed,
    /// outside the allowed set or in the agent's state.</summary>
    private string? Check(string logicalPath, out bool missingParent)
    {
        missingParent = false;
        string path = Normalise(logicalPath, "path");
        if (!_allowed.Any(a => a == "/" || path == a || path.StartsWith(a + "/", StringComparison.Ordinal)))
            throw new ConfinementException($"{logicalPath}: outside the allowed paths ({string.Join(", ", _allowed)})");
        string full = TreeWalker.FullPath(_root, path);
        if (_forbidden.FirstOrDefault(f => full == f || full.StartsWith(f + "/", StringComparison.Ordinal)) is { } state)
            throw new ConfinementException($"{logicalPath}: inside the agent's state directory {state}; refusing to write there");
        string current = _root;
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < segments.Length - 1; i++)
        {
            current = Path.Join(current, segments[i]);
            if (!PosixFiles.TryLstat(current, out var st))
            {
                missingParent = true;
                return null; // missing parents are created as directories, never followed
            }
            var kind = PosixFiles.KindOf(st);
            if (kind == EntryKind.Symlink)
                return $"{logicalPath}: refusing to write through the symlink {current}";
            if (kind != EntryKind.Directory)
                return $"{logicalPath}: {current} is not a directory";
        }
        return null;
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
        var segments = logicalPath[1..].Split('/');
        if (segments.Any(s => s is "" or "." or ".."))
            throw new ConfinementException($"{what} '{logicalPath}': empty, '.' or '..' segment");
        return logicalPath;
    }
}
