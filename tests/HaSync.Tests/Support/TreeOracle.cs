using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;

namespace HaSync.Tests.Support;

/// <summary>
/// What a tree holds, as the test sees it: an oracle written apart from the product (no TreeWalker, Comparison,
/// PosixFiles, FileEntry or product hashes), so that a field the product forgets to carry cannot also be forgotten
/// by the check that is meant to catch it.
/// </summary>
/// <remarks>
/// Implementation notes: every path is taken with lstat and never followed; a directory is descended only when lstat
/// says it is one (a symlink to a directory is a symlink). Directory mtimes are recorded, as rsync -a keeps them; symlink
/// times are not (HaSync does not keep them). A file that vanishes or changes while the walk hashes it makes the whole snapshot
/// start over (a few times): the tree is being written, and half of two versions is no version at all.
/// </remarks>
internal static class TreeOracle
{
    public enum Kind { File, Directory, Symlink, Other }

    /// <summary>One path's state. <see cref="Mode"/> is <c>st_mode &amp; 07777</c> (0 for symlinks, whose mode means
    /// nothing); size and hash only for files, mtime for files and directories; target only for symlinks.</summary>
    public sealed record Entry(string Path, Kind Kind, uint Mode, uint Uid, uint Gid, long Size, string? Sha256, long MtimeSeconds, long MtimeNanoseconds, string? Target);

    private sealed class ChangedDuringWalkException(string message) : Exception(message);

    /// <summary>Every path below <paramref name="directory"/> (relative, "." for the directory itself, sorted ordinally),
    /// without the excluded names and anything under an excluded directory. An absent directory is an empty tree.</summary>
    public static SortedDictionary<string, Entry> Snapshot(string directory, IReadOnlyList<string>? excludeNamePatterns = null)
    {
        var exclude = NameMatcher(excludeNamePatterns ?? []);
        string? lastProblem = null;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                var entries = new SortedDictionary<string, Entry>(StringComparer.Ordinal);
                if (Syscall.lstat(directory, out _) != 0)
                    return entries;
                Walk(directory, ".", exclude, entries);
                return entries;
            }
            catch (Exception e) when (e is ChangedDuringWalkException or IOException or UnauthorizedAccessException)
            {
                lastProblem = e.Message; // written while we walked: take the whole snapshot again
                Thread.Sleep(20);
            }
        }
        throw new IOException($"{directory} kept changing while it was walked (10 attempts); last: {lastProblem}");
    }

    /// <summary>The differences between two trees, one line each ("conf.d/a.conf: only on the passive",
    /// "x: mode 0644 vs 0600": active's value first). Empty when they hold the same. Unless <paramref name="setIdKept"/>
    /// (the agent runs with <c>--allow-setid</c>), the passive must hold the active's mode without its set-user-id and
    /// set-group-id bits (04000, 02000), the agent's default.</summary>
    public static List<string> Compare(string activeDirectory, string passiveDirectory, IReadOnlyList<string>? excludeNamePatterns = null, bool setIdKept = false)
    {
        var active = Snapshot(activeDirectory, excludeNamePatterns);
        var passive = Snapshot(passiveDirectory, excludeNamePatterns);
        return Compare(active, passive, setIdKept);
    }

    public static List<string> Compare(IReadOnlyDictionary<string, Entry> active, IReadOnlyDictionary<string, Entry> passive, bool setIdKept = false)
    {
        uint kept = setIdKept ? 0xfffu : 0xfffu & ~0xc00u; // 07777, or 01777
        var differences = new List<string>();
        foreach (string path in active.Keys.Union(passive.Keys).Order(StringComparer.Ordinal))
        {
            string shown = Show(path);
            if (!passive.TryGetValue(path, out var p))
            {
                differences.Add($"{shown}: only on the active ({Describe(active[path])})");
                continue;
            }
            if (!active.TryGetValue(path, out var a))
            {
                differences.Add($"{shown}: only on the passive ({Describe(p)})");
                continue;
            }
            if (a.Kind != p.Kind)
            {
                differences.Add($"{shown}: {Describe(a)} vs {Describe(p)}");
                continue;
            }
            var fields = new List<string>();
            if ((a.Mode & kept) != p.Mode)
                fields.Add($"mode {Octal(a.Mode)} vs {Octal(p.Mode)}");
            if (a.Uid != p.Uid)
                fields.Add($"uid {a.Uid} vs {p.Uid}");
            if (a.Gid != p.Gid)
                fields.Add($"gid {a.Gid} vs {p.Gid}");
            if (a.Kind == Kind.File)
            {
                if (a.Size != p.Size)
                    fields.Add($"size {a.Size} vs {p.Size}");
                if (a.Sha256 != p.Sha256)
                    fields.Add($"content sha256 {a.Sha256![..12]} vs {p.Sha256![..12]}");
            }
            if (a.Kind is Kind.File or Kind.Directory && (a.MtimeSeconds, a.MtimeNanoseconds) != (p.MtimeSeconds, p.MtimeNanoseconds))
                fields.Add($"mtime {a.MtimeSeconds}.{a.MtimeNanoseconds:D9} vs {p.MtimeSeconds}.{p.MtimeNanoseconds:D9}");
            if (a.Kind == Kind.Symlink && a.Target != p.Target)
                fields.Add($"target '{a.Target}' vs '{p.Target}'");
            if (fields.Count > 0)
                differences.Add($"{shown}: {string.Join(", ", fields)}");
        }
        return differences;
    }

    /// <summary>The relative paths below <paramref name="directory"/> and their kinds (no hashing): for picking targets.</summary>
    public static List<(string Path, Kind Kind)> List(string directory)
    {
        var found = new List<(string, Kind)>();
        void Descend(string full, string relative)
        {
            IEnumerable<string> children;
            try
            {
                children = Directory.EnumerateFileSystemEntries(full).ToList();
            }
            catch (DirectoryNotFoundException)
            {
                return; // went away between its lstat and its listing
            }
            foreach (string child in children)
            {
                string name = System.IO.Path.GetFileName(child);
                string childRelative = relative.Length == 0 ? name : relative + "/" + name;
                if (Syscall.lstat(child, out var st) != 0)
                    continue; // vanished: nothing to pick
                var kind = KindOf(st);
                found.Add((childRelative, kind));
                if (kind == Kind.Directory)
                    Descend(child, childRelative);
            }
        }
        Descend(directory, "");
        return found;
    }

    private static void Walk(string full, string relative, Func<string, bool> excluded, SortedDictionary<string, Entry> into)
    {
        var entry = Take(full, relative);
        into[relative] = entry;
        if (entry.Kind != Kind.Directory)
            return;
        foreach (string child in Directory.EnumerateFileSystemEntries(full).ToList())
        {
            string name = System.IO.Path.GetFileName(child);
            if (excluded(name))
                continue; // an excluded directory's contents are skipped with it
            Walk(child, relative == "." ? name : relative + "/" + name, excluded, into);
        }
    }

    private static Entry Take(string full, string relative)
    {
        if (Syscall.lstat(full, out var st) != 0)
            throw new ChangedDuringWalkException($"{relative} vanished during the walk ({Stdlib.GetLastError()})");
        var kind = KindOf(st);
        uint mode = kind == Kind.Symlink ? 0 : (uint)st.st_mode & 0xfff; // 07777
        switch (kind)
        {
            case Kind.File:
                string hash = HashFile(full, relative);
                if (Syscall.lstat(full, out var after) != 0 || after.st_size != st.st_size || after.st_mtime != st.st_mtime
                    || after.st_mtime_nsec != st.st_mtime_nsec || after.st_ctime_nsec != st.st_ctime_nsec || after.st_ino != st.st_ino)
                    throw new ChangedDuringWalkException($"{relative} changed while it was hashed");
                return new Entry(relative, kind, mode, st.st_uid, st.st_gid, st.st_size, hash, st.st_mtime, st.st_mtime_nsec, null);
            case Kind.Symlink:
                return new Entry(relative, kind, mode, st.st_uid, st.st_gid, 0, null, 0, 0, ReadLink(full, relative));
            case Kind.Directory:
                return new Entry(relative, kind, mode, st.st_uid, st.st_gid, 0, null, st.st_mtime, st.st_mtime_nsec, null);
            default:
                return new Entry(relative, kind, mode, st.st_uid, st.st_gid, 0, null, 0, 0, null);
        }
    }

    private static string HashFile(string full, string relative)
    {
        try
        {
            using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            return Convert.ToHexStringLower(SHA256.HashData(stream));
        }
        catch (FileNotFoundException)
        {
            throw new ChangedDuringWalkException($"{relative} vanished before it was hashed");
        }
    }

    private static string ReadLink(string full, string relative)
    {
        var buffer = new byte[4096];
        long length = Syscall.readlink(full, buffer);
        if (length < 0)
            throw new ChangedDuringWalkException($"{relative}: readlink failed ({Stdlib.GetLastError()})");
        return Encoding.UTF8.GetString(buffer, 0, (int)length);
    }

    private static Kind KindOf(Stat st) => (st.st_mode & FilePermissions.S_IFMT) switch
    {
        FilePermissions.S_IFREG => Kind.File,
        FilePermissions.S_IFDIR => Kind.Directory,
        FilePermissions.S_IFLNK => Kind.Symlink,
        _ => Kind.Other,
    };

    /// <summary>Name globs as the daemon's <c>exclude:</c> list writes them: <c>*</c> any run of characters, <c>?</c> one.</summary>
    public static Func<string, bool> NameMatcher(IReadOnlyList<string> patterns)
    {
        var regexes = patterns.Select(p => new Regex("^" + string.Concat(p.Select(c => c switch
        {
            '*' => ".*",
            '?' => ".",
            _ => Regex.Escape(c.ToString()),
        })) + "$", RegexOptions.Singleline | RegexOptions.CultureInvariant)).ToList();
        return name => regexes.Any(r => r.IsMatch(name));
    }

    private static string Describe(Entry e) => e.Kind switch
    {
        Kind.File => $"file of {e.Size} bytes",
        Kind.Symlink => $"symlink to '{e.Target}'",
        Kind.Directory => "directory",
        _ => "special file",
    };

    private static string Octal(uint mode) => "0" + Convert.ToString(mode, 8).PadLeft(3, '0');

    /// <summary>A path as a failure message can show it (a newline in a name would split the line).</summary>
    private static string Show(string path) => path.Replace("\n", "\\n", StringComparison.Ordinal);
}
