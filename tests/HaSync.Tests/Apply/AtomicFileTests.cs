using HaSync.Apply;
using HaSync.Tests.Support;

namespace HaSync.Tests.Apply;

/// <summary>A file replaced whole: the path holds the old complete file or the new one, and nothing else is touched.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void Write(AtomicFile file, string content)
    {
        file.Stream.Write(System.Text.Encoding.UTF8.GetBytes(content));
    }

    [Theory]
    [InlineData(false)] // names exchanged, the old file removed
    [InlineData(true)]  // fsync, rename over, fsync of the directory
    public void ReplacingAFileLeavesTheNewContentAndNoTempAndNeverWritesIntoTheOldFile(bool durable)
    {
        string path = _dir.File("target");
        File.WriteAllText(path, "old content\n");
        File.CreateSymbolicLink(_dir.File("old-link-is-not-it"), path);
        Assert.Equal(0, Mono.Unix.Native.Syscall.link(path, _dir.File("hardlink"))); // another name of the old inode
        using (var file = AtomicFile.Create(path))
        {
            Write(file, "new content\n");
            file.Commit(durable);
        }
        Assert.Equal("new content\n", File.ReadAllText(path));
        Assert.Equal("old content\n", File.ReadAllText(_dir.File("hardlink"))); // a new inode took the name; the old one is intact
        Assert.Equal(["hardlink", "old-link-is-not-it", "target"], Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ASymlinkInThePlaceIsReplacedItselfAndWhatItPointsToIsLeftAlone(bool durable)
    {
        File.WriteAllText(_dir.File("elsewhere"), "not to be touched\n");
        File.CreateSymbolicLink(_dir.File("target"), _dir.File("elsewhere"));
        using (var file = AtomicFile.Create(_dir.File("target")))
        {
            Write(file, "new content\n");
            file.Commit(durable);
        }
        Assert.Null(new FileInfo(_dir.File("target")).LinkTarget);
        Assert.Equal("new content\n", File.ReadAllText(_dir.File("target")));
        Assert.Equal("not to be touched\n", File.ReadAllText(_dir.File("elsewhere")));
        Assert.Equal(2, Directory.GetFileSystemEntries(_dir.Path).Length);
    }

    [Fact]
    public void ANewFileIsMadeAndAnUncommittedOneLeavesNothing()
    {
        using (var file = AtomicFile.Create(_dir.File("fresh")))
        {
            Write(file, "made\n");
            file.Commit(durable: false);
        }
        using (var abandoned = AtomicFile.Create(_dir.File("never")))
            Write(abandoned, "half");
        Assert.Equal("made\n", File.ReadAllText(_dir.File("fresh")));
        Assert.Equal(["fresh"], Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName));
    }
}
