using System.Buffers.Binary;
using System.Text;
using HaSync.Delta;
using HaSync.Protocol;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;

namespace HaSync.Tests.Apply;

/// <summary>
/// Whatever arrives on its stdin, the agent writes nothing outside its root and allow-list, never leaves a
/// partial file, keeps the existing file intact, and says what was wrong.
/// </summary>
public sealed class AgentHostileTests : IDisposable
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");
    private readonly TempDir _dir = new();   // holds the root and an "outside" directory next to it
    private readonly string _root;
    private readonly string _outside;

    public AgentHostileTests()
    {
        _root = _dir.File("root");
        _outside = _dir.File("outside");
        Directory.CreateDirectory(Path.Join(_root, "etc/bm"));
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Join(_outside, "victim"), "must stay");
        File.WriteAllText(Path.Join(_root, "etc/bm/keep.conf"), "existing complete content\n");
    }

    public void Dispose() => _dir.Dispose();

    private static byte[] Frame(FrameType type, params byte[] payload)
    {
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(payload.Length + 1));
        frame[4] = (byte)type;
        payload.CopyTo(frame, 5);
        return frame;
    }

    private static byte[] Hello(ushort version = Wire.Version, uint heartbeatMs = 3000)
    {
        var payload = new byte[10];
        BinaryPrimitives.WriteUInt32BigEndian(payload, Wire.Magic);
        BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(4), version);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(6), heartbeatMs);
        return Frame(FrameType.Hello, payload);
    }

    private (int Code, string Stderr) Serve(byte[] stdin, params string[] extra)
    {
        var (code, _, stderr) = Tools.Run(Hasync, ["serve", "--root", _root, .. TestTree.WithState(_root, extra)], stdin, TimeSpan.FromSeconds(30));
        return (code, stderr);
    }

    private void AssertNothingChanged()
    {
        Assert.Equal("existing complete content\n", File.ReadAllText(Path.Join(_root, "etc/bm/keep.conf")));
        Assert.Equal(["victim"], Directory.GetFiles(_outside).Select(Path.GetFileName));
        Assert.Equal("must stay", File.ReadAllText(Path.Join(_outside, "victim")));
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.hasync-*", SearchOption.AllDirectories)); // no temp file left behind
    }

    [Fact]
    public void GarbageOnStdinEndsTheSessionWithAClearError()
    {
        var (code, stderr) = Serve(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: passive\r\n\r\n"));
        Assert.Equal(2, code);
        Assert.Contains("protocol error", stderr);
        Assert.Contains("text where a message should begin (\"GET /…\"), not the hasync protocol", stderr);
        AssertNothingChanged();
    }

    /// <summary>The journal is read while the session starts (beside the hello and the first manifest): a state directory
    /// where it cannot be read still ends the session with its error and exit 2, having changed nothing.</summary>
    [Fact]
    public void AStateDirectoryWhereTheJournalCannotBeReadEndsTheSessionWithItsError()
    {
        string state = _dir.File("state");
        Directory.CreateDirectory(Path.Join(state, "journal.jsonl")); // a directory where the journal should be
        var (code, stderr) = Serve(Hello(), "--state", state);
        Assert.Equal(2, code);
        Assert.Contains($"closing the session: {Path.Join(state, "journal.jsonl")}: cannot open the journal", stderr);
        AssertNothingChanged();
    }

    [Fact]
    public void OversizedFrameIsRefusedBeforeAnyAllocation()
    {
        var (code, stderr) = Serve([.. Hello(), 0xff, 0xff, 0xff, 0xff, (byte)FrameType.PutFile]);
        Assert.Equal(2, code);
        Assert.Contains("reading a message's length: 4294967295 is outside 1..1048576", stderr);
        AssertNothingChanged();
    }

    [Fact]
    public void TruncatedFrameIsNamed()
    {
        byte[] header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header, 100);
        header[4] = (byte)FrameType.PutFile;
        var (code, stderr) = Serve([.. Hello(), .. header, .. new byte[10]]);
        Assert.Equal(2, code);
        Assert.Contains("reading a file sent: connection closed after 10 of its 99 bytes", stderr);
        AssertNothingChanged();
    }

    /// <summary>A sender that stops in the middle of a frame, its stdin left open (a link that died without a word), holds
    /// the agent no longer than five of the heartbeats its hello announced; the batch it left open goes with it.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ASenderSilentMidFrameOrBetweenFramesIsGivenUpAfterFiveHeartbeats(bool midFrame)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Hasync, ["serve", "--root", _root, .. TestTree.WithState(_root, [])])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var agent = System.Diagnostics.Process.Start(start)!;
        var stdout = agent.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
        var stderr = agent.StandardError.ReadToEndAsync();
        byte[] header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header, 100);
        header[4] = (byte)FrameType.PutFile;
        var input = agent.StandardInput.BaseStream;
        input.Write(Hello(heartbeatMs: 200));
        if (midFrame)
            input.Write([.. header, 1, 2, 3]);
        input.Flush(); // and nothing more, stdin left open
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await agent.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, agent.ExitCode);
        Assert.Contains("closing the session: nothing came from the sender for 1 s (its link or its node is down, or it stopped in the middle of a message)", await stderr);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(15));
        await stdout;
        AssertNothingChanged();
    }

    /// <summary>40 MiB of entries each keeping all of the previous one's path and adding 4000 bytes: without the cap at decode
    /// they would expand to paths of gigabytes (143 MiB of it drove an agent to a 4.2 GiB peak, and each refusal echoed the
    /// whole path to stderr). The first path over 4096 bytes ends the session; the agent's peak stays small.</summary>
    [Fact]
    public void PathsGrownThroughSharedPrefixesEndTheSessionAtOnceAndTheAgentStaysSmall()
    {
        var input = new MemoryStream();
        input.Write(Hello());
        byte[] chunk = Enumerable.Repeat((byte)'a', 4000).ToArray();
        int shared = 0;
        for (uint id = 1; id <= 10_000; id++)
        {
            byte[] rest = id == 1 ? [(byte)'/', .. chunk] : chunk;
            var payload = new PayloadWriter().U32(id).U8(0).U8((byte)EntryKind.Directory).VarU((ulong)shared).VarBytes(rest).VarU(0).VarU(0x1ed)
                .VarU(0).VarBytes([]).VarU(0).VarBytes([]).VarS(0).VarU(0);
            input.Write(Frame(FrameType.SetMetadata, payload.WrittenMemory.ToArray()));
            shared += rest.Length;
        }
        var (code, _, stderr) = Tools.Run(Tools.Require("/usr/bin/time", "time"), ["-f", "peak %M KiB", Hasync, "serve", "--root", _root, .. TestTree.WithState(_root, [])],
            input.ToArray(), TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains("entry field 'path': 8001 bytes, more than the 4096 a path may have", stderr);
        Assert.True(stderr.Length < 16 << 10, $"{stderr.Length} bytes on stderr");
        long peakKiB = long.Parse(System.Text.RegularExpressions.Regex.Match(stderr, @"peak (\d+) KiB").Groups[1].Value);
        Assert.InRange(peakKiB, 1, 256 << 10); // the runtime's own size is most of it
        AssertNothingChanged();
    }

    [Fact]
    public void WrongVersionOrUnknownTypeIsRefused()
    {
        var (code, stderr) = Serve(Hello(version: 99));
        Assert.Equal(2, code);
        Assert.Contains($"protocol version 99, this agent speaks {Wire.Version}", stderr);

        (code, stderr) = Serve([.. Hello(), .. Frame((FrameType)77, 1, 2, 3)]);
        Assert.Equal(2, code);
        Assert.Contains("reading a message: unknown type 77", stderr);
        AssertNothingChanged();
    }

    private Task<T> WithSession<T>(Func<AgentSession, Task<T>> work, params string[] extra) =>
        TestTree.WithSession(TestTree.LocalTarget(_root, extra), work);


    private static async Task<Ack> Put(AgentSession session, FileEntry entry, byte[] data, PutEncoding encoding = PutEncoding.Whole) =>
        await session.SendPut(entry, encoding, s => s.Write(data));

    [Theory]
    [InlineData("/etc/bm/../../../outside/victim", "'..' segment")]
    [InlineData("/../outside/victim", "'..' segment")]
    [InlineData("etc/bm/relative", "not absolute")]
    [InlineData("/etc/bm//double", "empty, '.' or '..' segment")]
    [InlineData("/etc/bm/./dot", "empty, '.' or '..' segment")]
    [InlineData("/etc/bm/nul\0byte", "contains NUL")]
    public async Task MalformedPathsAreRefusedAndTheSessionGoesOn(string path, string reason)
    {
        byte[] content = "pwned\n"u8.ToArray();
        var (refused, accepted) = await WithSession(async s =>
            (await Put(s, TestTree.FileEntry(path, content), content), await Put(s, TestTree.FileEntry("/etc/bm/fine.conf", content), content)));
        Assert.Equal(AckStatus.Failed, refused.Status);
        Assert.Contains(reason, refused.Message);
        Assert.Equal(AckStatus.Ok, accepted.Status);
        AssertNothingChanged();
    }

    [Fact]
    public async Task PathsOutsideTheAllowListAreRefused()
    {
        byte[] content = "root::0:0::/root:/bin/sh\n"u8.ToArray();
        var ack = await WithSession(s => Put(s, TestTree.FileEntry("/etc/passwd", content), content), "--allow", "/etc/bm");
        Assert.Equal(AckStatus.Failed, ack.Status);
        Assert.Contains("/etc/passwd: outside the allowed paths (/etc/bm)", ack.Message);
        Assert.False(File.Exists(Path.Join(_root, "etc/passwd")));

        var delete = await WithSession(s => s.SendDelete("/etc"), "--allow", "/etc/bm");
        Assert.Equal(AckStatus.Failed, delete.Status);
        AssertNothingChanged();
    }

    [Fact]
    public async Task WritingThroughASymlinkIsRefused()
    {
        File.CreateSymbolicLink(Path.Join(_root, "etc/escape"), _outside);
        byte[] content = "overwritten\n"u8.ToArray();
        var (put, mkdir, delete) = await WithSession(async s => (
            await Put(s, TestTree.FileEntry("/etc/escape/victim", content), content),
            await s.SendMakeDirectory(new FileEntry { Path = "/etc/escape/newdir", Kind = EntryKind.Directory, Mode = 0x1ed }),
            await s.SendDelete("/etc/escape/victim")));
        foreach (var ack in new[] { put, mkdir })
        {
            Assert.Equal(AckStatus.Failed, ack.Status);
            Assert.Contains("refusing to write through the symlink", ack.Message);
        }
        // No entry of the tree stands behind a symlink: the delete is already done, and nothing outside is touched.
        Assert.Equal(AckStatus.Ok, delete.Status);
        AssertNothingChanged();
    }

    /// <summary>With --root a symlink and --state spelled through that link, the state directory is still found inside the
    /// root (by its real path), and the sender can neither rewrite the epoch nor empty the journal.</summary>
    [Fact]
    public async Task AStateDirectorySpelledThroughALinkedRootIsStillNeverWritten()
    {
        string link = _dir.File("linked-root");
        File.CreateSymbolicLink(link, _root);
        string state = Path.Join(link, "var/lib/hasync");
        byte[] content = "pwned\n"u8.ToArray();
        var target = TestTree.LocalTarget(link, "--state", state);
        var (journal, epoch) = await TestTree.WithSession(target, async s => (
            await Put(s, TestTree.FileEntry("/var/lib/hasync/journal.jsonl", content), content),
            await Put(s, TestTree.FileEntry("/var/lib/hasync/epoch.json", content), content)));
        foreach (var ack in new[] { journal, epoch })
        {
            Assert.Equal(AckStatus.Failed, ack.Status);
            Assert.Contains("inside the agent's state directory", ack.Message);
        }
        Assert.DoesNotContain("pwned", File.ReadAllText(Path.Join(_root, "var/lib/hasync/epoch.json")));
        Assert.DoesNotContain("pwned", File.ReadAllText(Path.Join(_root, "var/lib/hasync/journal.jsonl")));
    }

    /// <summary>The state directory outside the root, bind-mounted inside it: another spelling of the same directory, which no
    /// real path resolves to. It is known by its device and inode: nothing written there, nothing of it listed or read.</summary>
    [Fact]
    public async Task AStateDirectoryBindMountedInsideTheRootIsKnownByItsInodeNeverWrittenListedOrRead()
    {
        string state = _dir.File("state");
        Directory.CreateDirectory(state);
        string mountPoint = Path.Join(_root, "etc/bm/mirror");
        Directory.CreateDirectory(mountPoint);
        Tools.Check("mount", "--bind", state, mountPoint);
        try
        {
            byte[] content = "pwned\n"u8.ToArray();
            var target = TestTree.LocalTarget(_root, "--state", state);
            uint stateMode = 0;
            var (epoch, read, manifest) = await TestTree.WithSession(target, async s =>
            {
                stateMode = (uint)new DirectoryInfo(state).UnixFileMode; // as the agent made it at its start
                var itself = await s.SendSetMetadata(new FileEntry { Path = "/etc/bm/mirror", Kind = EntryKind.Directory, Mode = 0x1ff }); // 0777
                Assert.Equal(AckStatus.Failed, itself.Status);
                Assert.Contains("/etc/bm/mirror: is the agent's state directory; refusing to write there", itself.Message);
                var put = await Put(s, TestTree.FileEntry("/etc/bm/mirror/epoch.json", content), content);
                string? refused = null;
                try
                {
                    await s.RequestContent("/etc/bm/mirror/journal.key", 1000);
                }
                catch (AgentRequestException e)
                {
                    refused = e.Message;
                }
                return (put, refused, await s.RequestManifest(["/etc/bm"]));
            });
            Assert.Equal(AckStatus.Failed, epoch.Status);
            Assert.Contains("/etc/bm/mirror/epoch.json: inside the agent's state directory; refusing to write there", epoch.Message);
            Assert.Contains("inside the agent's state directory", read);
            Assert.DoesNotContain(manifest, e => e.Path.StartsWith("/etc/bm/mirror", StringComparison.Ordinal));
            Assert.Contains(manifest, e => e.Path == "/etc/bm/keep.conf"); // the rest is listed
            Assert.DoesNotContain("pwned", File.ReadAllText(Path.Join(state, "epoch.json")));
            Assert.Equal(stateMode, (uint)new DirectoryInfo(state).UnixFileMode); // not re-moded through its other name
        }
        finally
        {
            Tools.Check("umount", mountPoint);
        }
    }

    [Fact]
    public async Task MoreDataThanAnnouncedLeavesTheExistingFileIntact()
    {
        byte[] content = new byte[100_000];
        var ack = await WithSession(s => Put(s, TestTree.FileEntry("/etc/bm/keep.conf", content, size: 10), content));
        Assert.Equal(AckStatus.Failed, ack.Status);
        Assert.Contains("more data than the announced 10 bytes", ack.Message);
        AssertNothingChanged();
    }

    [Fact]
    public async Task CorruptDeltaOrWrongHashLeavesTheExistingFileIntact()
    {
        byte[] content = "new content\n"u8.ToArray();
        var (corrupt, wrongHash) = await WithSession(async s => (
            await Put(s, TestTree.FileEntry("/etc/bm/keep.conf", content), [0xde, 0xad, 0xbe, 0xef, 0x00], PutEncoding.Delta),
            await Put(s, TestTree.FileEntry("/etc/bm/keep.conf", content, hash: new byte[32]), content)));
        Assert.Equal(AckStatus.Failed, corrupt.Status);
        Assert.Contains("delta: bad magic 0xdeadbeef", corrupt.Message);
        Assert.Equal(AckStatus.HashMismatch, wrongHash.Status);
        AssertNothingChanged();
    }

    [Fact]
    public async Task NothingIsWrittenBeforeAClaimNorIntoTheAgentsOwnState()
    {
        byte[] content = "pwned\n"u8.ToArray();
        string state = Path.Join(_root, "var/lib/hasync");
        var target = TestTree.LocalTarget(_root, "--state", state);
        await using (var agent = AgentProcess.Start(target))
        {
            using var session = AgentSession.Open(agent.Input, agent.Output, "unclaimed", agent.Describe);
            var unclaimed = await Put(session, TestTree.FileEntry("/etc/bm/keep.conf", content), content).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(AckStatus.Fenced, unclaimed.Status);
            Assert.Contains("no epoch claimed", unclaimed.Message);
        }
        var (journal, epoch) = await TestTree.WithSession(target, async s => (
            await Put(s, TestTree.FileEntry("/var/lib/hasync/journal.jsonl", content), content),
            await Put(s, TestTree.FileEntry("/var/lib/hasync/epoch.json", content), content)));
        foreach (var ack in new[] { journal, epoch })
        {
            Assert.Equal(AckStatus.Failed, ack.Status);
            Assert.Contains($"inside the agent's state directory {state}; refusing to write there", ack.Message);
        }
        Assert.DoesNotContain("pwned", File.ReadAllText(Path.Join(state, "epoch.json")));
        AssertNothingChanged();
    }

    [Fact]
    public void AnImpossibleEpochEndsTheSession()
    {
        var claim = new PayloadWriter().U32(1).I64(0).Text("node").Text("host").I64(0).U8(0);
        var (code, stderr) = Serve([.. Hello(), .. Frame(FrameType.Claim, [.. claim.WrittenMemory.Span])]);
        Assert.Equal(2, code);
        Assert.Contains("impossible epoch 0 of node 'node'", stderr);
        AssertNothingChanged();
    }

    [Fact]
    public async Task FullDiskFailsThePutCleanlyAndTheSessionGoesOn()
    {
        string mount = _dir.File("tiny");
        Directory.CreateDirectory(mount);
        Tools.Check("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mount);
        try
        {
            Directory.CreateDirectory(Path.Join(mount, "etc/bm"));
            File.WriteAllText(Path.Join(mount, "etc/bm/keep.conf"), "existing complete content\n");
            byte[] large = TestData.Random(new Random(1), 1 << 20);
            byte[] small = "fits\n"u8.ToArray();

            var target = TestTree.LocalTarget(mount);
            await using var agent = AgentProcess.Start(target);
            using var session = AgentSession.Open(agent.Input, agent.Output, "tiny", agent.Describe);
            await TestTree.ClaimAsync(session);
            var full = await Put(session, TestTree.FileEntry("/etc/bm/keep.conf", large), large);
            var next = await Put(session, TestTree.FileEntry("/etc/bm/small.conf", small), small);

            Assert.Equal(AckStatus.NoSpace, full.Status);
            Assert.Contains("No space left on device", full.Message);
            Assert.Equal("existing complete content\n", File.ReadAllText(Path.Join(mount, "etc/bm/keep.conf")));
            Assert.Empty(Directory.GetFiles(mount, "*.hasync-*", SearchOption.AllDirectories));
            Assert.Equal(AckStatus.Ok, next.Status);
            Assert.Equal("fits\n", File.ReadAllText(Path.Join(mount, "etc/bm/small.conf")));

            // The room the agent reports is the file system's, where the path is or would be made, checked with df's own numbers.
            var df = System.Text.Encoding.UTF8.GetString(Tools.Check("df", "--output=avail,iavail", "-B1", mount)).Split('\n', StringSplitOptions.RemoveEmptyEntries)[1]
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(ulong.Parse).ToArray();
            foreach (string path in new[] { "/etc/bm/keep.conf", "/etc/bm/not/yet/made.conf" })
            {
                var room = await session.RequestSpace(path);
                Assert.InRange(room.Bytes, 1UL, 256UL << 10);
                Assert.InRange((long)room.Bytes - (long)df[0], -(64 << 10), 64 << 10); // df counts for unprivileged users
                Assert.InRange(room.Inodes, 1UL, ulong.MaxValue - 1);
            }
            var outside = await Assert.ThrowsAsync<AgentRequestException>(() => session.RequestSpace("/etc/bm/../../outside"));
            Assert.Contains("'..' segment", outside.Message);
        }
        finally
        {
            Tools.Run("umount", [mount]);
        }
    }
}
