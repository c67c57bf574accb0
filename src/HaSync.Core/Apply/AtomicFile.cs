using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// Writes a file so that readers see either the old complete file or the new complete file, never a part:
/// a temp file in the same directory, fsync, rename over the target, fsync of the directory.
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

    /// <summary>Makes the new content durable and puts it in place.</summary>
    public void Commit()
    {
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        File.Move(_tempPath, TargetPath, overwrite: true);
        _committed = true;
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
