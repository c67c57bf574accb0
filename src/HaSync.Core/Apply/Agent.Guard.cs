using HaSync.Delta;
using HaSync.Guard;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>The split-brain guard inside the agent: fencing by epoch, the journal's verdict on local changes, conflict copies.</summary>
public sealed partial class Agent
{
    private static HashSet<string> ConflictCopies(string stateDirectory)
    {
        string copies = Path.Combine(stateDirectory, "conflicts");
        return Directory.Exists(copies)
            ? Directory.EnumerateFiles(copies, "*", SearchOption.AllDirectories).Select(copy => "/" + Path.GetRelativePath(copies, copy)).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
    }

    /// <summary>True (and the request answered Fenced, a put's data drained) when the session has no accepted epoch, or
    /// another node's later epoch has been accepted since ours. A put is checked again when its batch is committed,
    /// before anything of it is published, so here only its claim is (one lstat less per file of a burst).</summary>
    private bool Fenced(uint id, Func<Frame?> next, bool put)
    {
        string? why = null;
        if (_claim is null)
            why = "no epoch claimed: the sender must claim its term as the active node before writing (is it an older hasync?)";
        else if (!put)
        {
            try
            {
                _epochs.EnsureStillCurrent(_claim);
            }
            catch (FencedException e)
            {
                why = e.Message;
            }
        }
        if (why is null)
            return false;
        if (put)
            new DataFrameReadStream(next, id).Drain();
        log.WriteLine($"hasync serve: {why}");
        _deferredAcks.Add((id, AckStatus.Fenced, why));
        return true;
    }

    /// <summary>Null when the entry <paramref name="logicalPath"/> of <paramref name="directory"/> (whose lstat the caller has:
    /// <paramref name="st"/>, null when absent) may be overwritten or deleted: absent, as HaSync last wrote it, already
    /// holding <paramref name="incoming"/>'s content, or the sender adopts (--force). Otherwise what the passive's own
    /// change is, in words.</summary>
    private string? LocalChangeAt(TreeDirectory directory, string logicalPath, Mono.Unix.Native.Stat? st, FileEntry? incoming)
    {
        string name = TreeWalker.NameOf(logicalPath), fullPath = directory.PathOf(name);
        if (st is null || AtomicFile.IsTempName(name))
            return null; // nothing there, or a temp file left by a killed agent: HaSync's own
        var change = Journal.Check(logicalPath, st.Value, () => directory.Describe(name, logicalPath), out var current);
        if (change == LocalChange.None)
            return null;
        if (incoming is not null && current is not null && Journal.FingerprintOf(current) == Journal.FingerprintOf(incoming))
            return null; // the same content arrived by another way: nothing of the passive's own is lost
        if (_adopt)
        {
            log.WriteLine($"hasync serve: {fullPath}: overwriting a {(change == LocalChange.Edited ? "local change" : "file HaSync never wrote")}, as the sender asked");
            return null;
        }
        return change == LocalChange.Edited
            ? $"{fullPath}: changed on this node since HaSync last wrote it"
            : $"{fullPath}: differs from the active's and was never written by HaSync (first contact; seed with 'hasync resync --force')";
    }

    /// <summary>HaSync wrote <paramref name="entry"/> in <paramref name="directory"/>: the journal says so (with the version
    /// now there: <paramref name="now"/>, when the caller has just looked), and a conflict that stood there is settled.</summary>
    private void Record(FileEntry entry, TreeDirectory directory, Mono.Unix.Native.Stat? now = null)
    {
        Journal.Wrote(entry, now ?? directory.Entry(TreeWalker.NameOf(entry.Path)));
        Settled(entry.Path);
    }

    /// <summary>The incoming copy of a conflict that is settled goes.</summary>
    private void Settled(string logicalPath)
    {
        if (!_conflictCopies.Remove(logicalPath))
            return;
        try
        {
            File.Delete(ConflictCopyPath(logicalPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.WriteLine($"hasync serve: {ConflictCopyPath(logicalPath)}: cannot remove the settled conflict's copy: {e.Message}");
        }
    }

    /// <summary>Where the incoming version of a conflicting path is kept.</summary>
    private string ConflictCopyPath(string logicalPath) => TreeWalker.FullPath(Path.Combine(stateDirectory, "conflicts"), logicalPath);

    /// <summary>A conflict: the passive's file stays as it is; the incoming version is kept under the state directory
    /// (private: it may be secret), for the admin to compare. Always throws the <see cref="ConflictException"/>.</summary>
    private void KeepIncoming(FileEntry entry, PutEncoding encoding, DataFrameReadStream data, TreeDirectory directory, string conflict)
    {
        string copy = ConflictCopyPath(entry.Path);
        string kept;
        try
        {
            StateDirectory.EnsurePrivate(Path.GetDirectoryName(copy)!);
            using var file = AtomicFile.Create(copy, privateUntilCommit: true);
            var hashing = new HashingWriteStream(file.Stream, entry.Size);
            Receive(encoding, data, hashing, directory, TreeWalker.NameOf(entry.Path), entry);
            data.Drain();
            if (hashing.Finish() is { } received && received.AsSpan().SequenceEqual(entry.Hash))
            {
                file.Commit();
                _conflictCopies.Add(entry.Path);
                kept = $"the active's version is at {copy}";
            }
            else
            {
                kept = "the active's version did not arrive whole and is not kept";
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            data.Drain();
            kept = $"the active's version could not be kept: {e.Message}";
        }
        throw new ConflictException($"{conflict}; left as it is; {kept}");
    }
}
