using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// Writes a file so that readers see either the old complete file or the new complete file, never a part:
/// a temp file in the same directory, rename over the target; when durable, fsync of the file before the
/// rename and of the directory after it, so a power cut cannot undo or empty the new file.
/// Disposing without <see cref="Commit"/> removes the temp file and leaves the target untouched.
/// </summary>
public sealed class AtomicFile : IDisposable
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
    public static AtomicFile Create(string path)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full) ?? "/";
        string name = Path.GetFileName(full);
        if (name.Length > 100)
            name = name[..100]; // the temp name must stay under NAME_MAX
        string tempPath = Path.Combine(directory, $".{name}.hasync-{Guid.NewGuid():N}.tmp");
        var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        return new AtomicFile(full, tempPath, stream);
    }

    /// <summary>Puts the new content in place; with <paramref name="durable"/>, on disk before and after the rename.</summary>
    public void Commit(bool durable = true)
    {
        Stream.Flush(flushToDisk: durable);
        Stream.Dispose();
        File.Move(_tempPath, TargetPath, overwrite: true);
        _committed = true;
        if (durable)
            Libc.FsyncDirectory(Path.GetDirectoryName(TargetPath) ?? "/");
    }

    /// <summary>Removes the temp file unless committed.</summary>
    public void Dispose()
    {
        Stream.Dispose();
        if (!_committed)
            File.Delete(_tempPath);
    }
}
