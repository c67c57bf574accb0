using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// Writes a file so that readers see either the old complete file or the new complete file, never a part:
/// a temp file in the same directory, rename over the target; when durable, fsync of the file before the
/// rename and of the directory after it, so a power cut cannot undo or empty the new file.
/// Disposing without <see cref="Commit"/> removes the temp file and leaves the target untouched.
/// </summary>
public sealed partial class AtomicFile : IDisposable
{
    private readonly string _tempPath;
    private bool _committed;

    private AtomicFile(string path, string tempPath, FileStream stream)
    {
        TargetPath = path;
        _tempPath = tempPath;
        Stream = stream;
    }

    /// <summary>The file that <see cref="Commit"/> replaces.</summary>
    public string TargetPath { get; }

    /// <summary>Where to write the new content.</summary>
    public FileStream Stream { get; }

    /// <summary>Opens a temp file beside <paramref name="path"/>.</summary>
    /// <param name="path">The file to replace.</param>
    /// <param name="privateUntilCommit">Create the temp file 0600, so content that is secret is never readable by
    /// others before the final mode is set; otherwise it gets the usual 0666 less umask.</param>
    public static AtomicFile Create(string path, bool privateUntilCommit = false)
    {
        string full = Path.GetFullPath(path);
        string tempPath = TempPathBeside(full);
        // No FileStream buffer (data arrives in large chunks) and no share lock (the name is unique): per file, both
        // cost an allocation or a syscall that a burst of thousands of small files pays thousands of times.
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite | FileShare.Delete, BufferSize = 0 };
        if (privateUntilCommit)
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var stream = new FileStream(tempPath, options);
        return new AtomicFile(full, tempPath, stream);
    }

    /// <summary>Puts the new content in place; with <paramref name="durable"/>, on disk before and after the rename.</summary>
    /// <param name="durable">fsync the file before the rename and the directory after it.</param>
    /// <param name="beforeRename">Runs on the complete temp file just before the rename (owner, mode, times).</param>
    public void Commit(bool durable = true, Action<string>? beforeRename = null)
    {
        if (durable)
            Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        beforeRename?.Invoke(_tempPath);
        // Not durable: a rename over an existing file makes ext4 (auto_da_alloc) write the new file out then and there, a
        // flush nobody asked for (50 ms for 64 MB). Exchanging the names, then removing the old file from under the temp
        // name, keeps the path holding one complete file throughout, without it.
        if (!durable && Scanning.PosixFiles.TryLstat(TargetPath, out var old) && Scanning.PosixFiles.KindOf(old) == Scanning.EntryKind.File
            && Libc.Exchange(_tempPath, TargetPath))
        {
            _committed = true;
            File.Delete(_tempPath);
            return;
        }
        Libc.Rename(_tempPath, TargetPath);
        _committed = true;
        if (durable)
            Libc.FsyncDirectory(Path.GetDirectoryName(TargetPath) ?? "/");
    }

    /// <summary>Puts a symlink to <paramref name="target"/> at <paramref name="fullPath"/> the same way: made beside it,
    /// <paramref name="beforeRename"/> run on it (owner, times), renamed over whatever stood there; on failure the new
    /// link goes and the old entry stays.</summary>
    public static void PlaceSymlink(string fullPath, string target, Action<string>? beforeRename = null)
    {
        string temp = TempPathBeside(fullPath);
        File.CreateSymbolicLink(temp, target);
        try
        {
            beforeRename?.Invoke(temp);
            Libc.Rename(temp, fullPath);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>A fresh hidden name in the directory of <paramref name="fullPath"/>: a rename from it stays within one file system.</summary>
    public static string TempPathBeside(string fullPath) =>
        Path.Combine(Path.GetDirectoryName(fullPath) ?? "/", TempNameFor(Path.GetFileName(fullPath)));

    /// <summary>A fresh hidden name for a temp file that will replace <paramref name="name"/>.</summary>
    public static string TempNameFor(string name) =>
        $".{(name.Length > 100 ? name[..100] : name)}.hasync-{TempNamePrefix}{(ulong)Interlocked.Increment(ref _tempNames):x16}.tmp"; // under NAME_MAX

    // A random prefix a process and a counter: names no other process makes, without a random read per file (O_EXCL
    // refuses a name that exists anyway).
    private static readonly string TempNamePrefix = Convert.ToHexStringLower(HaSync.Interop.Libc.RandomBytes(8));
    private static long _tempNames;

    /// <summary>True for a name <see cref="TempPathBeside"/> makes: a temp file of HaSync's own (one a killed agent
    /// left behind is an extra on the passive, never anyone's work).</summary>
    public static bool IsTempName(string name) => TempName().IsMatch(name);

    [System.Text.RegularExpressions.GeneratedRegex(@"^\..*\.hasync-[0-9a-f]{32}\.tmp$", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex TempName();

    /// <summary>Removes the temp file unless committed.</summary>
    public void Dispose()
    {
        Stream.Dispose();
        if (!_committed)
            File.Delete(_tempPath);
    }
}
