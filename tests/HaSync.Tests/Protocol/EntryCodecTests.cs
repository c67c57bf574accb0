using HaSync.Protocol;
using HaSync.Scanning;
using HaSync.Tests.Support;

namespace HaSync.Tests.Protocol;

/// <summary>The entry codec: compact both ways, and bounded on what it decodes whatever the bytes say.</summary>
public class EntryCodecTests
{
    private static FileEntry[] Decode(PayloadWriter payload, int count)
    {
        var reader = new PayloadReader(payload.WrittenMemory, FrameType.PutFile);
        var codec = new EntryCodec();
        var entries = new FileEntry[count];
        for (int i = 0; i < count; i++)
            entries[i] = codec.Read(ref reader);
        return entries;
    }

    [Fact]
    public void EntriesRoundTripWithSharedPrefixes()
    {
        var sent = new[]
        {
            TestTree.FileEntry("/etc/bm/conf.d/a.conf", "a\n"u8.ToArray()) with { Owner = "root", Group = "root" },
            TestTree.FileEntry("/etc/bm/conf.d/b.conf", "b\n"u8.ToArray()) with { Owner = "root", Group = "root", MtimeNanoseconds = 7 },
            new FileEntry { Path = "/etc/bm/current.ini", Kind = EntryKind.Symlink, LinkTarget = "bm.ini", Owner = "nobody", Uid = 65534 },
        };
        var payload = new PayloadWriter();
        var codec = new EntryCodec();
        foreach (var entry in sent)
            codec.Write(payload, entry);
        var received = Decode(payload, sent.Length);
        Assert.Equal(sent.Select(e => (e.Path, e.Kind, e.Size, e.Mode, e.Owner, e.Uid, e.MtimeSeconds, e.MtimeNanoseconds, e.LinkTarget, e.HashHex)),
            received.Select(e => (e.Path, e.Kind, e.Size, e.Mode, e.Owner, e.Uid, e.MtimeSeconds, e.MtimeNanoseconds, e.LinkTarget, e.HashHex)));
    }

    /// <summary>Each entry shares all of the previous path and adds 4000 bytes: without a cap, a little input decodes to
    /// paths of any length (143 MiB of it drove an agent to a 4.2 GiB peak).</summary>
    [Fact]
    public void APathGrownPastPathMaxThroughSharedPrefixesIsRefusedAtDecode()
    {
        var payload = new PayloadWriter();
        byte[] chunk = Enumerable.Repeat((byte)'a', 4000).ToArray();
        int shared = 0;
        for (int i = 0; i < 3; i++)
        {
            byte[] rest = i == 0 ? [(byte)'/', .. chunk] : chunk;
            payload.U8(0).U8((byte)EntryKind.Directory).VarU((ulong)shared).VarBytes(rest).VarU(0).VarU(0x1ed)
                .VarU(0).VarBytes([]).VarU(0).VarBytes([]).VarS(0).VarU(0);
            shared += rest.Length;
        }
        var e = Assert.Throws<ProtocolException>(() => Decode(payload, 3));
        Assert.Equal("entry field 'path': 8001 bytes, more than the 4096 a path may have", e.Message);
    }

    [Fact]
    public void AnOwnerNameLongerThanANameCanBeIsRefused()
    {
        var payload = new PayloadWriter();
        payload.U8(0).U8((byte)EntryKind.Directory).VarU(0).VarBytes("/etc"u8).VarU(0).VarU(0x1ed)
            .VarU(0).VarBytes(Enumerable.Repeat((byte)'r', 100_000).ToArray()).VarU(0).VarBytes([]).VarS(0).VarU(0);
        var e = Assert.Throws<ProtocolException>(() => Decode(payload, 1));
        Assert.StartsWith("entry field 'owner': 100000 bytes, more than the 256", e.Message);
    }
}
