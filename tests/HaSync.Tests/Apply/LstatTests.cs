using HaSync.Interop;
using HaSync.Tests.Support;
using Mono.Unix.Native;

namespace HaSync.Tests.Apply;

/// <summary>The agent's and the scanner's own lstat (newfstatat bound directly) says what Mono.Posix's says, field by field:
/// versions are compared across the two (a journal's record against a fresh look), so one differing field is a false conflict.</summary>
public sealed class LstatTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EveryKindOfEntryIsDescribedAsMonoPosixDescribesIt()
    {
        string file = _dir.File("file");
        File.WriteAllText(file, "some content\n");
        Assert.Equal(0, Syscall.chmod(file, FilePermissions.S_ISUID | FilePermissions.S_ISGID | FilePermissions.S_ISVTX | (FilePermissions)0x1a4));
        Assert.Equal(0, Syscall.utimensat(Syscall.AT_FDCWD, file,
            [new Timespec { tv_sec = 1_700_000_000, tv_nsec = 123_456_789 }, new Timespec { tv_sec = 1_600_000_000, tv_nsec = 987_654_321 }], 0));
        string directory = _dir.File("directory");
        Directory.CreateDirectory(directory);
        string link = _dir.File("link");
        File.CreateSymbolicLink(link, "a target that is not there");
        string fifo = _dir.File("fifo");
        Assert.Equal(0, Syscall.mkfifo(fifo, (FilePermissions)0x180));
        foreach (string path in new[] { file, directory, link, fifo, "/dev/null", "/" })
        {
            Assert.Equal(0, Syscall.lstat(path, out var expected));
            Assert.Equal(0, LibcAt.Lstat(LibcAt.AT_FDCWD, path, out var actual));
            Assert.Equal(expected, actual); // every field: device, inode, mode, links, owner, rdev, size, blocks, all three times
        }
    }

    [Fact]
    public void ANameIsLookedUpBelowTheDirectoryGivenAndALinkIsNotFollowed()
    {
        Directory.CreateDirectory(_dir.File("below"));
        File.WriteAllText(_dir.File("below/name"), "x");
        File.CreateSymbolicLink(_dir.File("below/link"), "name");
        int fd = Syscall.open(_dir.File("below"), OpenFlags.O_RDONLY | OpenFlags.O_DIRECTORY);
        Assert.True(fd >= 0);
        try
        {
            Assert.Equal(0, LibcAt.Lstat(fd, "name", out var name));
            Assert.Equal(0, Syscall.lstat(_dir.File("below/name"), out var expected));
            Assert.Equal(expected, name);
            Assert.Equal(0, LibcAt.Lstat(fd, "link", out var linkStat));
            Assert.Equal(FilePermissions.S_IFLNK, linkStat.st_mode & FilePermissions.S_IFMT);
            Assert.Equal(LibcAt.ENOENT, LibcAt.Lstat(fd, "missing", out _));
            Assert.Equal(LibcAt.ENOTDIR, LibcAt.Lstat(fd, "name/below-a-file", out _));
        }
        finally
        {
            _ = Syscall.close(fd);
        }
    }
}
