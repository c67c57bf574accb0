using System.Text.Json;
using HaSync.Apply;
using HaSync.Interop;
using HaSync.Protocol;

namespace HaSync.Guard;

/// <summary>
/// A term of being the active node: a number that only grows across the pair, the node that took it (a random id
/// kept in its state directory) and that node's host name, for messages.
/// </summary>
public sealed record Epoch(long Number, string Node, string Host, DateTimeOffset At)
{
    /// <summary>True when an agent that has accepted <paramref name="known"/> may accept this one: a higher number, or the
    /// same term of the same node (its next session).</summary>
    public bool MayFollow(Epoch? known) => known is null || Number > known.Number || (Number == known.Number && Node == known.Node);

    /// <summary>As messages name it.</summary>
    public override string ToString() => $"epoch {Number} of {Host} (node {Node}, taken {At:yyyy-MM-dd HH:mm:ss}Z)";
}

/// <summary>An agent refused a sender's epoch: another node has become active since.</summary>
public sealed class FencedException(string message) : HaSyncException(message);

/// <summary>
/// A node's epochs, in its state directory (<c>epoch.json</c>, <c>node-id</c>). One file holds the highest epoch
/// this node knows, whether it took it (as the active) or accepted it (its agent, as the passive): so a passive
/// that becomes active takes a number above the one it last accepted, which the former active's agent will then
/// prefer to the former active's own. Read-modify-write under a flock; written by rename, fsynced.
/// A node whose claim a passive refused remembers the epoch that superseded it (<c>superseded.json</c>) and takes no
/// new term, even when its role check says active, until its own agent has accepted that epoch or a later one (it
/// has received the new active's changes) or an admin runs <c>hasync resync --force</c> on it: a former active that
/// comes back cannot outbid the node that took over by restarting.
/// </summary>
public sealed class EpochStore
{
    private readonly string _directory;
    private readonly string _file;
    private readonly Lock _cacheLock = new();
    private (Mono.Unix.Native.Stat Version, Epoch? Epoch)? _cached;

    /// <summary>The store in <paramref name="stateDirectory"/> (created when first written).</summary>
    public EpochStore(string stateDirectory)
    {
        _directory = stateDirectory;
        _file = Path.Combine(stateDirectory, "epoch.json");
    }

    /// <summary>Where the highest known epoch is kept.</summary>
    public string FilePath => _file;

    private string? _nodeId;

    /// <summary>This node's id: random, made once per state directory (and read once per store).</summary>
    public string NodeId => _nodeId ??= ReadOrCreateNodeId();

    private string ReadOrCreateNodeId()
    {
        string path = Path.Combine(_directory, "node-id");
        try
        {
            if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } id)
                return id;
            StateDirectory.Ensure(_directory);
            using var file = AtomicFile.Create(path, privateUntilCommit: true); // 0600, as all in the state directory
            file.Stream.Write(System.Text.Encoding.ASCII.GetBytes(Convert.ToHexStringLower(HaSync.Interop.Libc.RandomBytes(8)) + "\n"));
            file.Commit();
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HaSyncException($"{path}: cannot read or create the node id: {e.Message}");
        }
    }

    /// <summary>The highest epoch this node knows, or null when it knows none yet.</summary>
    public Epoch? Known() => ReadEpochFile(_file);

    private string SupersededFile => Path.Combine(_directory, "superseded.json");

    /// <summary>The epoch that superseded this node's last term, while it has not caught up with it.</summary>
    public Epoch? SupersededBy() => ReadEpochFile(SupersededFile);

    /// <summary>The epoch in <paramref name="path"/>, or null when there is no such file.</summary>
    private static Epoch? ReadEpochFile(string path)
    {
        try
        {
            return File.Exists(path) ? GuardJson.ReadEpoch(File.ReadAllBytes(path)) : null;
        }
        catch (JsonException e)
        {
            throw new HaSyncException($"{path}: unreadable epoch file ({e.Message}); move it away only if you know which node is active");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HaSyncException($"{path}: cannot read the epoch: {e.Message}");
        }
    }

    /// <summary>Replaces <paramref name="path"/> with <paramref name="epoch"/>: temp file, fsync, rename.</summary>
    private static void WriteEpochFile(string path, Epoch epoch)
    {
        using var file = AtomicFile.Create(path, privateUntilCommit: true); // 0600, as all in the state directory
        file.Stream.Write(GuardJson.Write(epoch));
        file.Commit();
    }

    /// <summary>Takes a new term for this node: one above every epoch it knows and above <paramref name="above"/>. Refused
    /// while another node's term superseded this one's, unless <paramref name="admin"/> (resync --force) says so.</summary>
    /// <exception cref="FencedException">This node was superseded and has not caught up.</exception>
    public Epoch TakeNew(long above = 0, bool admin = false) => Locked(known =>
    {
        if (SupersededBy() is { } by)
        {
            if (!admin)
                throw new FencedException($"this node's last term was refused by a passive that had accepted {by}; it takes no new term until " +
                                          $"it has received that node's changes, or an admin runs 'hasync resync --force' on it ({SupersededFile})");
            File.Delete(SupersededFile);
        }
        var epoch = new Epoch(Math.Max(known?.Number ?? 0, above) + 1, NodeId, Environment.MachineName, DateTimeOffset.UtcNow);
        return (epoch, epoch);
    });

    /// <summary>A passive refused this node's claim, knowing <paramref name="by"/>: remembered unless this node has already
    /// accepted it (or a later one) itself.</summary>
    public void RecordSuperseded(Epoch by) => Locked(known =>
    {
        if (by.MayFollow(known) && known != by)
            WriteEpochFile(SupersededFile, by);
        return (by, null);
    });

    /// <summary>This node's current term if the highest epoch it knows is its own; else a new one.</summary>
    public Epoch CurrentOrNew()
    {
        var known = Known();
        return known is not null && known.Node == NodeId ? known : TakeNew();
    }

    /// <summary>Claims a term on <paramref name="session"/>: the daemon's <paramref name="term"/>, or for a one-shot command this
    /// node's current term (or a new one); with <paramref name="outbid"/> (resync --force), a new term above the agent's too.
    /// With <paramref name="adopt"/> the agent overwrites what the passive changed on its own. A refusal is remembered
    /// (see <see cref="RecordSuperseded"/>).</summary>
    /// <exception cref="FencedException">The agent knows a later epoch, or this node was superseded.</exception>
    public async Task<Epoch> ClaimAsync(Sync.AgentSession session, Epoch? term, bool outbid, bool adopt)
    {
        var epoch = term ?? (outbid ? TakeNew(above: session.AgentEpoch?.Number ?? 0, admin: true) : CurrentOrNew());
        try
        {
            await session.ClaimAsync(epoch, adopt).ConfigureAwait(false);
        }
        catch (FencedException) when (session.AgentEpoch is { } by)
        {
            RecordSuperseded(by);
            throw;
        }
        return epoch;
    }

    /// <summary>The agent's side: accepts <paramref name="claim"/> (and remembers it) when it may follow the highest
    /// epoch known here; otherwise throws a <see cref="FencedException"/> that says who took over and when.</summary>
    public void Accept(Epoch claim) => Locked(known =>
    {
        if (!claim.MayFollow(known))
            throw Fenced(claim, known!);
        if (SupersededBy() is { } by && claim.Number >= by.Number)
            File.Delete(SupersededFile); // this node has caught up with the term that superseded it
        return (claim, known is not null && known == claim ? null : claim);
    });

    /// <summary>Throws a <see cref="FencedException"/> when another epoch has been accepted since <paramref name="claim"/>
    /// (by another session of this agent, or by this node becoming active). Reads the file only when it changed.</summary>
    public void EnsureStillCurrent(Epoch claim)
    {
        Epoch? known;
        lock (_cacheLock)
        {
            if (!Scanning.PosixFiles.TryLstat(_file, out var st))
                known = null;
            else if (_cached is { } c && Scanning.PosixFiles.SameVersion(c.Version, st))
                known = c.Epoch;
            else
            {
                known = Known();
                _cached = (st, known);
            }
        }
        if (known is not null && known != claim && !claim.MayFollow(known))
            throw Fenced(claim, known);
    }

    private static FencedException Fenced(Epoch claim, Epoch known) => new(
        $"refusing {claim}: this node has since accepted {known}. A former active may not overwrite the node that took over; " +
        $"if {claim.Host} really is the active node now, run 'hasync resync --force' there.");

    /// <summary>Reads the known epoch under the lock, lets <paramref name="change"/> decide the result and what to write (null: nothing).</summary>
    private Epoch Locked(Func<Epoch?, (Epoch Result, Epoch? Write)> change)
    {
        string lockPath = Path.Combine(_directory, "epoch.lock");
        try
        {
            StateDirectory.Ensure(_directory);
            using var lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            Libc.LockExclusive(lockFile.SafeFileHandle, lockPath);
            var (result, write) = change(Known());
            if (write is not null)
                WriteEpochFile(_file, write);
            return result;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HaSyncException($"{_file}: cannot update the epoch: {e.Message}");
        }
    }
}
