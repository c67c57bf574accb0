using HaSync.Guard;
using HaSync.Scanning;
using HaSync.Tests.Support;

namespace HaSync.Tests.Guard;

/// <summary>The agent's journal on real files: what HaSync wrote stays its own until someone else changes it.</summary>
public sealed class JournalTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _state;

    public JournalTests()
    {
        _state = _dir.File("state");
        Directory.CreateDirectory(_dir.File("root"));
    }

    public void Dispose() => _dir.Dispose();

    private string Full(string name) => _dir.File("root/" + name);

    private Mono.Unix.Native.Stat? Version(string name) => HaSync.Scanning.PosixFiles.TryLstat(Full(name), out var st) ? st : null;

    /// <summary>Writes a file as the agent would, and returns its entry.</summary>
    private FileEntry Write(string name, string content)
    {
        File.WriteAllText(Full(name), content);
        return PosixFiles.Describe(Full(name), "/" + name)!;
    }

    private LocalChange Check(Journal journal, string name) => journal.Check("/" + name, Full(name), out _);

    [Fact]
    public void WrittenThenEditedThenNeverWritten()
    {
        using var journal = new Journal(_state);
        journal.Wrote(Write("a.conf", "from the active\n"), Version("a.conf"));
        Write("b.conf", "made on the passive\n");
        journal.Flush();

        Assert.Equal(LocalChange.None, Check(journal, "a.conf"));
        Assert.Equal(LocalChange.Unrecorded, Check(journal, "b.conf"));
        Assert.Equal(LocalChange.None, Check(journal, "absent.conf"));

        TestTree.Chmod(Full("a.conf"), "600");                  // metadata alone: not a conflict
        File.SetLastWriteTimeUtc(Full("a.conf"), new DateTime(2020, 1, 1));
        Assert.Equal(LocalChange.None, Check(journal, "a.conf"));
        File.AppendAllText(Full("a.conf"), "local edit\n");
        Assert.Equal(LocalChange.Edited, Check(journal, "a.conf"));
        File.WriteAllText(Full("a.conf"), "from the active\n");  // edited back to the same content: nothing to lose
        Assert.Equal(LocalChange.None, Check(journal, "a.conf"));

        journal.Removed("/a.conf");
        journal.Flush();
        Assert.Equal(LocalChange.Unrecorded, Check(journal, "a.conf"));
    }

    [Fact]
    public void ItIsReadBackAndSharedBetweenSessions()
    {
        using var first = new Journal(_state);
        using var second = new Journal(_state);                  // another agent session on the same node
        first.Wrote(Write("a.conf", "one\n"), Version("a.conf"));
        first.Flush();
        Assert.Equal(LocalChange.None, Check(second, "a.conf"));
        second.Wrote(Write("a.conf", "two\n"), Version("a.conf"));
        second.Flush();
        Assert.Equal(LocalChange.None, Check(first, "a.conf"));  // not a conflict: the other session wrote it

        using var later = new Journal(_state);
        Assert.Equal((1, LocalChange.None), (later.Count, Check(later, "a.conf")));
    }

    [Fact]
    public void ACrashBetweenIntentAndRenameLeavesEitherContentAcceptable()
    {
        using (var journal = new Journal(_state))
        {
            journal.Wrote(Write("a.conf", "old\n"), Version("a.conf"));
            journal.Flush();
            var incoming = TestTree.FileEntry("/a.conf", "new\n"u8.ToArray());
            journal.Intend(incoming);
            journal.Flush();                                      // made durable with the batch; then the agent dies
        }
        using (var afterCrash = new Journal(_state))
            Assert.Equal(LocalChange.None, Check(afterCrash, "a.conf")); // the rename never happened: the old content is ours
        File.WriteAllText(Full("a.conf"), "new\n");
        using (var afterRename = new Journal(_state))
            Assert.Equal(LocalChange.None, Check(afterRename, "a.conf")); // it did, and the record was lost: the new one is ours
    }

    [Fact]
    public void ALineTornByACrashCostsNoLineWrittenAfterIt()
    {
        using (var journal = new Journal(_state))
        {
            journal.Wrote(Write("a.conf", "one\n"), Version("a.conf"));
            journal.Flush();
        }
        File.AppendAllText(Path.Combine(_state, "journal.jsonl"), "{\"Op\":\"wrote\",\"Pa"); // the crash cut this line short
        using (var afterCrash = new Journal(_state))
        {
            afterCrash.Wrote(Write("b.conf", "two\n"), Version("b.conf"));
            afterCrash.Flush();
        }
        using var later = new Journal(_state);
        Assert.Equal((2, LocalChange.None, LocalChange.None), (later.Count, Check(later, "a.conf"), Check(later, "b.conf")));
    }

    [Fact]
    public void ALineTornByAnotherSessionsCrashCostsNoLineThisOneWritesAfterIt()
    {
        using var journal = new Journal(_state);                 // open before the other session died
        journal.Wrote(Write("a.conf", "one\n"), Version("a.conf"));
        journal.Flush();
        File.AppendAllText(Path.Combine(_state, "journal.jsonl"), "{\"Op\":\"wrote\",\"Pa"); // the other session's last line, cut short
        journal.Wrote(Write("b.conf", "two\n"), Version("b.conf"));
        journal.Flush();
        using var later = new Journal(_state);
        Assert.Equal((2, LocalChange.None, LocalChange.None), (later.Count, Check(later, "a.conf"), Check(later, "b.conf")));
    }

    [Fact]
    public void ALongSessionCompactsItAndOthersFollow()
    {
        using var other = new Journal(_state);
        using var journal = new Journal(_state);
        var entry = Write("a.conf", "the same file, written again and again\n");
        for (int i = 0; i < 10_001; i++)
            journal.Wrote(entry, Version("a.conf"));
        journal.Wrote(Write("b.conf", "last\n"), Version("b.conf"));
        journal.Flush();
        Assert.Equal(2, File.ReadAllLines(Path.Combine(_state, "journal.jsonl")).Length);
        Assert.Equal(LocalChange.None, Check(other, "b.conf")); // it reopens the compacted file
        File.WriteAllText(Full("b.conf"), "edited\n");
        Assert.Equal(LocalChange.Edited, Check(other, "b.conf"));
    }

    [Fact]
    public void ATornLastLineIsSkippedAndTheRestKept()
    {
        using (var journal = new Journal(_state))
        {
            journal.Wrote(Write("a.conf", "kept\n"), Version("a.conf"));
            journal.Flush();
        }
        File.AppendAllText(Path.Combine(_state, "journal.jsonl"), "{\"op\":\"wrote\",\"path\":\"/b.co\n");
        using var reopened = new Journal(_state);
        Assert.Equal(LocalChange.None, Check(reopened, "a.conf"));
        Assert.Equal(1, reopened.Count);
    }

    /// <summary>A 0600 "pin=NNNN" file was recovered from its unkeyed fingerprint in 0.01 s: the journal is private, in a

    /// <summary>A journal longer than one read (it is taken in a chunk at a time): lines cut between two reads, and a
    /// damaged line longer than a read, cost nothing of the lines around them.</summary>
    [Fact]
    public void AJournalLongerThanOneReadIsTakenInWhole()
    {
        static string Name(int i) => $"file-{i:D4}-{new string('n', i % 97)}.conf"; // lines of many lengths: cuts fall anywhere
        using (var journal = new Journal(_state))
        {
            for (int i = 0; i < 1500; i++)
                journal.Wrote(Write(Name(i), $"content {i}\n"), Version(Name(i)));
            journal.Flush();
        }
        string file = Path.Combine(_state, "journal.jsonl");
        Assert.True(new FileInfo(file).Length > 4 << 16, $"{new FileInfo(file).Length} bytes: not several reads");
        File.AppendAllText(file, new string('x', 200_000) + "\n");
        using (var journal = new Journal(_state))
        {
            journal.Wrote(Write("last.conf", "last\n"), Version("last.conf"));
            journal.Flush();
        }
        using var reopened = new Journal(_state);
        Assert.Equal(1501, reopened.Count);
        for (int i = 0; i < 1500; i++)
            Assert.Equal(LocalChange.None, Check(reopened, Name(i)));
        Assert.Equal(LocalChange.None, Check(reopened, "last.conf"));
        File.AppendAllText(Full(Name(700)), "edited\n");
        Assert.Equal(LocalChange.Edited, Check(reopened, Name(700)));
    }

    /// <summary>Lines whole but damaged (a value of the wrong type, a number too large, an unknown field with an object)
    /// are skipped like a torn one: the journal still opens, and the lines around them count.</summary>
    [Fact]
    public void ADamagedLineIsSkippedAndTheRestKept()
    {
        using (var journal = new Journal(_state))
        {
            journal.Wrote(Write("a.conf", "kept\n"), Version("a.conf"));
            journal.Flush();
        }
        File.AppendAllText(Path.Combine(_state, "journal.jsonl"),
            "{\"op\":\"wrote\",\"path\":5}\n{\"op\":\"removed\",\"path\":\"/a.conf\",\"ino\":\"x\"}\n"
            + "{\"op\":\"removed\",\"path\":\"/a.conf\",\"size\":123456789012345678901234567890}\n{\"op\":[],\"path\":\"/a.conf\"}\n"
            + "{\"op\":\"wrote\",\"path\":\"/c.conf\",\"fingerprint\":\"-> x\",\"later\":{\"a\":[1,2]}}\n");
        using var reopened = new Journal(_state);
        Assert.Equal(LocalChange.None, Check(reopened, "a.conf"));
        Assert.Equal(2, reopened.Count);
    }
    /// state directory no other user can list, and its fingerprints are keyed with this node's secret.</summary>
    [Fact]
    public void TheJournalIsPrivateAndItsFingerprintsSayNothingOfTheContent()
    {
        var pin = Write("pin.conf", "pin=4242\n");
        using (var journal = new Journal(_state))
        {
            journal.Wrote(pin, Version("pin.conf"));
            journal.Flush();
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_state, "journal.jsonl")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_state, "journal.key")));
        Assert.Equal((UnixFileMode)0x1c9 /* 0711 */, File.GetUnixFileMode(_state));
        string text = File.ReadAllText(Path.Combine(_state, "journal.jsonl"));
        Assert.DoesNotContain(pin.HashHex, text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("\"k2:", text);
    }

    [Fact]
    public void AFingerprintAnOlderHasyncKeyedWithHmacStillNamesItsContent()
    {
        var entry = Write("a.conf", "from the active\n");
        Directory.CreateDirectory(_state);
        byte[] key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        File.WriteAllBytes(Path.Combine(_state, "journal.key"), key);
        string hmac = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(key, Convert.FromHexString(entry.HashHex)));
        File.WriteAllText(Path.Combine(_state, "journal.jsonl"), // as hasync wrote it before keyed BLAKE2b (2026-12-03)
            $"{{\"op\":\"wrote\",\"path\":\"/a.conf\",\"fingerprint\":\"k1:{hmac}\"}}\n{{\"op\":\"wrote\",\"path\":\"/b.conf\",\"fingerprint\":\"k1:{hmac}\"}}\n");
        Write("b.conf", "changed on the passive\n");
        using var journal = new Journal(_state);
        Assert.Equal((LocalChange.None, LocalChange.Edited), (Check(journal, "a.conf"), Check(journal, "b.conf")));
    }

    [Fact]
    public void AJournalAnOlderHasyncWroteIsKeyedOnOpeningWithoutMakingAnyFileAConflict()
    {
        var entry = Write("a.conf", "from the active\n");
        Directory.CreateDirectory(_state);
        Assert.True(PosixFiles.TryLstat(Full("a.conf"), out var st));
        File.WriteAllText(Path.Combine(_state, "journal.jsonl"), // as 2026-11 versions wrote it: the bare content hash, 0644
            $"{{\"op\":\"wrote\",\"path\":\"/a.conf\",\"fingerprint\":\"{entry.HashHex}\",\"ino\":{st.st_ino},\"size\":{st.st_size},\"mtime\":{st.st_mtime},\"mtime_ns\":{st.st_mtime_nsec},\"ctime\":{st.st_ctime},\"ctime_ns\":{st.st_ctime_nsec}}}\n");
        using var journal = new Journal(_state);
        File.SetLastWriteTimeUtc(Full("a.conf"), new DateTime(2020, 1, 1)); // a new version: the fingerprint is compared
        Assert.Equal(LocalChange.None, Check(journal, "a.conf"));
        Assert.DoesNotContain(entry.HashHex, File.ReadAllText(Path.Combine(_state, "journal.jsonl")), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_state, "journal.jsonl")));
    }
}
