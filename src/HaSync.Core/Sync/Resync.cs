using System.Buffers;
using System.Diagnostics;
using HaSync.Configuration;
using HaSync.Delta;
using HaSync.Guard;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>What a resync did.</summary>
public sealed class ResyncStats
{
    /// <summary>Entries of the watched set on the active.</summary>
    public int Scanned { get; set; }
    /// <summary>Files whose content was sent (whole or delta).</summary>
    public int FilesSent { get; set; }
    /// <summary>Directories and symlinks created or replaced.</summary>
    public int OthersCreated { get; set; }
    /// <summary>Paths whose owner, group, mode or mtime alone were fixed.</summary>
    public int MetadataFixed { get; set; }
    /// <summary>Paths removed on the passive.</summary>
    public int Deleted { get; set; }
    /// <summary>Paths found identical but not (or no longer) in the passive's journal, now recorded as HaSync's.</summary>
    public int Adopted { get; set; }
    /// <summary>Paths the passive changed on its own and kept (path, the agent's words): for the admin to settle.</summary>
    public SortedDictionary<string, string> Conflicts { get; } = new(StringComparer.Ordinal);
    /// <summary>Content bytes sent as such (whole files and delta literals).</summary>
    public long LiteralBytes { get; set; }
    /// <summary>Content bytes the passive rebuilt from its own copy.</summary>
    public long MatchedBytes { get; set; }
    /// <summary>Protocol bytes sent and received.</summary>
    public long WireBytes { get; set; }
    /// <summary>Wall time.</summary>
    public TimeSpan Elapsed { get; set; }
    /// <summary>What could not be done, each naming the path and the cause.</summary>
    public List<string> Failures { get; } = [];
    /// <summary>Paths whose set-user-id or set-group-id bits the passive does not keep (its agent runs without
    /// <c>--allow-setid</c>), with the active's mode: the rest of their mode was made the same.</summary>
    public SortedDictionary<string, uint> SetIdNotKept { get; } = new(StringComparer.Ordinal);
    /// <summary>The paths of <see cref="Failures"/> and <see cref="Conflicts"/>, each with its failure (the daemon tries them again).</summary>
    public Dictionary<string, string> FailedPaths { get; } = new(StringComparer.Ordinal);
    /// <summary>Paths of <see cref="FailedPaths"/> refused for lack of room on the passive, each with the free space the
    /// passive should report before it is worth sending again.</summary>
    public Dictionary<string, long> SpaceNeeded { get; } = new(StringComparer.Ordinal);
    /// <summary>Paths not sent because the passive still lacks the room an earlier try found missing (their failure stands).</summary>
    public HashSet<string> HeldForSpace { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Full compare of the watched set against one target's manifest, then the pushes that make the passive
/// identical. Order: first whatever stands where the active has another kind of entry (deepest first, so the
/// way is clear); then directories, symlinks, files and metadata in path order, so parents exist before
/// children; extras last (deepest first), so a renamed file is never missing on the passive in between. Files
/// the passive has are sent as deltas against its copy (signatures fetched in one pipelined batch), small or
/// new ones whole. A delta whose result does not hash right is sent again whole; a file that changed since the
/// scan is described again and resent once. The daemon pushes its batches through the same <c>PushAsync</c>.
/// </summary>
public static class Resync
{
    /// <summary>Runs a resync over <paramref name="session"/>.</summary>
    /// <param name="config">The watched set.</param>
    /// <param name="session">The target's session.</param>
    /// <param name="delete">Remove extras on the passive.</param>
    /// <param name="progress">Receives the compare's counts a few times a second, then each push.</param>
    /// <param name="passive">When given, reset to the manifest and kept up to date with every acknowledged write.</param>
    /// <param name="cache">The active's hash cache, if it keeps one.</param>
    /// <param name="spaceWaits">Paths that failed for lack of room, each sent only if the passive now reports the free space given.</param>
    /// <param name="scan">The active's side, when it was started before the session (see <see cref="ActiveScan"/>); else started here.</param>
    /// <param name="cancellationToken">Stops between files.</param>
    public static async Task<ResyncStats> RunAsync(HaSyncConfig config, AgentSession session, bool delete,
        IProgress<ResyncProgress>? progress = null, PassiveState? passive = null, HashCache? cache = null,
        IReadOnlyDictionary<string, long>? spaceWaits = null, ActiveScan? scan = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        long wireBefore = session.WireBytes;
        scan ??= ActiveScan.Start(config, cache, cancellationToken);
        var differences = await CompareAsync(session, scan, progress, cancellationToken).ConfigureAwait(false);
        passive?.Reset(differences.Select(d => d.Passive).OfType<FileEntry>());
        var own = scan.OwnSignatures;
        foreach (var d in differences.Where(d => !UsesDelta(d)))
            own.Remove(d.Path); // kept only for the files a delta is made of
        var stats = await PushAsync(config, session, differences, delete, passive, progress, spaceWaits, own, cancellationToken).ConfigureAwait(false);
        stats.Scanned = differences.Count(d => d.Active is not null);
        stats.Failures.InsertRange(0, scan.Unreadable.Values);
        foreach (var (path, failure) in scan.Unreadable)
            stats.FailedPaths[path] = failure;
        stats.WireBytes = session.WireBytes - wireBefore; // the manifest too, not only the pushes
        stats.Elapsed = clock.Elapsed;
        return stats;
    }

    /// <summary>Makes the passive match the active for every path in <paramref name="differences"/> (from
    /// <see cref="Comparison.Compare(IReadOnlyList{FileEntry}, IReadOnlyList{FileEntry}, uint)"/>), and waits for every ack.
    /// A path in <paramref name="spaceWaits"/> (it failed for lack of room) is sent only if the passive now reports the free
    /// space given there: asking costs a few bytes, sending the whole file to have it refused again costs all of them.
    /// <paramref name="ownSignatures"/>: the active files' own block sums from the compare's hash pass, which a delta then
    /// need not compute again.</summary>
    public static async Task<ResyncStats> PushAsync(HaSyncConfig config, AgentSession session, IReadOnlyList<PathDifference> differences, bool delete,
        PassiveState? passive = null, IProgress<ResyncProgress>? progress = null, IReadOnlyDictionary<string, long>? spaceWaits = null,
        IReadOnlyDictionary<string, Signature>? ownSignatures = null, CancellationToken cancellationToken = default)
    {
        var sent = await SendAsync(config, session, differences, delete, progress, spaceWaits, ownSignatures, cancellationToken).ConfigureAwait(false);
        return await FinishAsync(sent, passive).ConfigureAwait(false);
    }

    /// <summary>A push whose requests are all sent (and flushed): <see cref="FinishAsync"/> waits for its acks.</summary>
    internal sealed class SentPush
    {
        public required HaSyncConfig Config { get; init; }
        public required AgentSession Session { get; init; }
        public required IReadOnlyList<PathDifference> Differences { get; init; }
        public required ResyncStats Stats { get; init; }
        public required Dictionary<string, PassiveSpace> Room { get; init; }
        public required List<(PathDifference Difference, string Action, Task<Ack> Ack)> Acks { get; init; }
        public required Task<Ack> Flushed { get; init; }
        public required Stopwatch Clock { get; init; }
        public required long WireBefore { get; init; }
    }

    /// <summary>The first half of a push (<c>PushAsync</c>): every request sent and flushed, no ack awaited. The daemon scans
    /// its next round while the passive applies this one; until <see cref="FinishAsync"/>, nothing of it is known to be done.</summary>
    internal static async Task<SentPush> SendAsync(HaSyncConfig config, AgentSession session, IReadOnlyList<PathDifference> differences, bool delete,
        IProgress<ResyncProgress>? progress = null, IReadOnlyDictionary<string, long>? spaceWaits = null,
        IReadOnlyDictionary<string, Signature>? ownSignatures = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        long wireBefore = session.WireBytes;
        var stats = new ResyncStats();
        foreach (var d in differences.Where(d => d.NotKept != 0))
            stats.SetIdNotKept[d.Path] = d.Active!.Mode | d.NotKept;
        var (clearing, extras) = Deletions(differences, delete);
        var pushes = differences.Where(d => d.Active is not null && (d.Status != PathStatus.Identical || d.Passive!.Local != LocalChange.None)).ToList();
        var room = await RoomAsync(session, pushes, spaceWaits).ConfigureAwait(false);
        foreach (var (path, space) in room)
            if (space.Bytes < (ulong)spaceWaits![path] || space.Inodes < 2) // a temp file beside the target, then the rename
                stats.HeldForSpace.Add(path);
        pushes.RemoveAll(d => stats.HeldForSpace.Contains(d.Path));
        int total = clearing.Count + pushes.Count + extras.Count, done = 0;
        long totalBytes = pushes.Sum(ContentBytes), bytes = 0;

        var signatures = new Dictionary<string, Task<byte[]>>(StringComparer.Ordinal);
        var deltaCandidates = pushes.Where(UsesDelta).ToList();
        foreach (var d in deltaCandidates)
            signatures[d.Path] = session.RequestSignature(d.Path, push: d == deltaCandidates[^1]);

        var acks = new List<(PathDifference Difference, string Action, Task<Ack> Ack)>();
        void SendDeletes(List<string> paths)
        {
            foreach (string path in paths)
            {
                progress?.Report(new PushProgress(++done, total, "delete", path, bytes, totalBytes));
                acks.Add((new(path, PathStatus.Extra, null, null, []), "delete", session.SendDelete(path)));
            }
        }
        SendDeletes(clearing);
        foreach (var d in pushes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long before = bytes, reported = bytes;
            // A large file's progress shows while it is read and sent, every MiB of it.
            Action<int>? onRead = progress is null ? null : read =>
            {
                bytes += read;
                if (bytes - reported >= 1 << 20)
                    progress.Report(new PushProgress(done + 1, total, "sending", d.Path, Math.Min(reported = bytes, before + ContentBytes(d)), totalBytes));
            };
            var (action, ack) = await PushAsync(config, session, d, signatures, stats, onRead, ownSignatures?.GetValueOrDefault(d.Path), cancellationToken).ConfigureAwait(false);
            bytes = before + ContentBytes(d);
            progress?.Report(new PushProgress(++done, total, action, d.Path, bytes, totalBytes));
            acks.Add((d, action, ack));
        }
        SendDeletes(extras);

        var flushed = session.SendFlush(); // answered with the batch's acks, once the passive committed it: awaited with them
        return new SentPush { Config = config, Session = session, Differences = differences, Stats = stats, Room = room, Acks = acks, Flushed = flushed, Clock = clock, WireBefore = wireBefore };
    }

    /// <summary>The second half of a push (<c>PushAsync</c>): waits for every ack of <paramref name="sent"/>, sends again whole
    /// what did not rebuild right, and records what the passive now holds in <paramref name="passive"/>.</summary>
    internal static async Task<ResyncStats> FinishAsync(SentPush sent, PassiveState? passive)
    {
        var (config, session, differences, stats, room, acks) = (sent.Config, sent.Session, sent.Differences, sent.Stats, sent.Room, sent.Acks);
        await sent.Flushed.ConfigureAwait(false);
        // One wait for the whole batch: awaiting each ack in turn would hop to the thread pool once per file.
        await Task.WhenAll(acks.Select(a => a.Ack)).ConfigureAwait(false);

        if (acks.FirstOrDefault(a => a.Ack.Result.Status == AckStatus.Fenced) is { Ack: not null } fenced)
            throw new FencedException($"target {session.Target}: {fenced.Ack.Result.Message}");
        foreach (var (d, action, ackTask) in acks)
        {
            var ack = ackTask.Result;
            var applied = d;
            if (ack.Status == AckStatus.HashMismatch)
                (ack, applied) = await ResendWholeAsync(config, session, d, stats).ConfigureAwait(false);
            passive?.Record(applied, ack);
            if (ack.Status == AckStatus.Conflict)
            {
                stats.Conflicts[d.Path] = ack.Message;
                stats.FailedPaths[d.Path] = ack.Message;
                continue;
            }
            if (ack.Status == AckStatus.NoSpace)
            {
                // Room for it, and more than the passive had when it last said there was enough: never resent on the same guess.
                long needed = Math.Max(RoomFor(d.Active), room.TryGetValue(d.Path, out var had) ? (long)Math.Min(had.Bytes, long.MaxValue / 2) + RoomFor(null) : 0);
                stats.SpaceNeeded[d.Path] = needed;
                stats.Failures.Add($"{d.Path}: {Doing(action)}: {ack.Message} (the passive needs about {Sizes.Human(needed)} free for it)");
                stats.FailedPaths[d.Path] = stats.Failures[^1];
                continue;
            }
            if (ack.Status != AckStatus.Ok)
            {
                stats.Failures.Add($"{d.Path}: {Doing(action)}: {ack.Message}");
                stats.FailedPaths[d.Path] = stats.Failures[^1];
                continue;
            }
            switch (action)
            {
                case "delete": stats.Deleted++; break;
                case "metadata": stats.MetadataFixed++; break;
                case "adopt": stats.Adopted++; break;
                case "whole" or "delta": stats.FilesSent++; break;
                default: stats.OthersCreated++; break;
            }
        }
        // Identical paths: the passive holds exactly what the active has (its stat may be fresher than ours).
        if (passive is not null)
            foreach (var d in differences.Where(d => d.Status == PathStatus.Identical && d.Passive!.Local == LocalChange.None))
                passive.Record(d, new Ack(AckStatus.Ok, ""));
        stats.WireBytes = session.WireBytes - sent.WireBefore;
        stats.Elapsed = sent.Clock.Elapsed;
        return stats;
    }

    /// <summary>The bytes of content a push reads and sends (whole, or as a delta): a file's size, nothing for the rest.</summary>
    private static long ContentBytes(PathDifference d) =>
        d is { Status: PathStatus.Missing or PathStatus.ContentDiffers, Active: { Kind: EntryKind.File } file } ? file.Size : 0;

    /// <summary>The passive's free space where each push waiting for room would go (asked in one pipelined batch).</summary>
    private static async Task<Dictionary<string, PassiveSpace>> RoomAsync(AgentSession session, List<PathDifference> pushes,
        IReadOnlyDictionary<string, long>? spaceWaits)
    {
        var waiting = spaceWaits is null ? [] : pushes.Where(d => spaceWaits.ContainsKey(d.Path)).ToList();
        var asked = waiting.Select(d => (d.Path, Space: session.RequestSpace(d.Path, push: d == waiting[^1]))).ToList();
        var room = new Dictionary<string, PassiveSpace>(StringComparer.Ordinal);
        foreach (var (path, space) in asked)
        {
            try
            {
                room[path] = await space.ConfigureAwait(false);
            }
            catch (AgentRequestException)
            {
                // The passive could not say: the push itself is tried, and its answer says what is wrong.
            }
        }
        return room;
    }

    /// <summary>About what <paramref name="entry"/> takes on the passive's disk: its size, a little for its blocks' bookkeeping,
    /// and 64 KiB for the directory and journal entries that come with it.</summary>
    private static long RoomFor(FileEntry? entry)
    {
        long size = entry?.Kind == EntryKind.File ? entry.Size : 0;
        return size + size / 64 + (64 << 10);
    }

    /// <summary>The active's scan and the passive's manifest of the watched set, compared; a path the active cannot read
    /// fails the compare (nothing of it may look like a delete).</summary>
    public static Task<List<PathDifference>> CompareAsync(HaSyncConfig config, AgentSession session, CancellationToken cancellationToken = default) =>
        CompareAsync(session, ActiveScan.Start(config, cache: null, cancellationToken, forReport: true), progress: null, cancellationToken);

    /// <summary>The passive's manifest, asked for now (the agent walks and hashes while the scan does, if it still runs),
    /// compared with <paramref name="scan"/>; <paramref name="progress"/> receives what each side has described so far,
    /// every quarter of a second and at the end.</summary>
    private static async Task<List<PathDifference>> CompareAsync(AgentSession session, ActiveScan scan, IProgress<ResyncProgress>? progress,
        CancellationToken cancellationToken)
    {
        var passiveCount = new ScanCounter();
        // Disposed to stop the reports: a cancelled wait would throw, and the first exception of a native process costs
        // milliseconds (its stack trace's method names are looked up in the binary's tables).
        using var ticks = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        var reporting = progress is null ? Task.CompletedTask : ReportAsync(progress, scan.Counter, passiveCount, ticks);
        List<FileEntry> local, held;
        try
        {
            var manifest = session.RequestManifest(scan.Config.Paths, passiveCount);
            local = await scan.Entries.WaitAsync(cancellationToken).ConfigureAwait(false);
            held = await manifest.ConfigureAwait(false);
        }
        finally
        {
            ticks.Dispose();
            await reporting.ConfigureAwait(false);
        }
        progress?.Report(new CompareProgress(scan.Counter.Now, passiveCount.Now));
        var remote = held.Where(e => !Excluded(scan.Exclude, e.Path) && !scan.Unreadable.Keys.Any(s => TreeWalker.Within(e.Path, s))).ToList();
        return Comparison.Compare(local, remote, session.KeptModeBits);
    }

    /// <summary>Reports the counts at each tick until <paramref name="ticks"/> is disposed (the compare is over; its last counts follow).</summary>
    private static async Task ReportAsync(IProgress<ResyncProgress> progress, ScanCounter active, ScanCounter passive, PeriodicTimer ticks)
    {
        while (await ticks.WaitForNextTickAsync().ConfigureAwait(false))
            progress.Report(new CompareProgress(active.Now, passive.Now));
    }

    /// <summary>The passive's manifest of <paramref name="roots"/> (and what is below them), excluded paths left out as
    /// the active's scan leaves them out.</summary>
    public static async Task<List<FileEntry>> ManifestAsync(HaSyncConfig config, AgentSession session, IReadOnlyList<string> roots)
    {
        var exclude = new PathFilter(config.Exclude);
        return (await session.RequestManifest(roots).ConfigureAwait(false)).Where(e => !Excluded(exclude, e.Path)).ToList();
    }

    /// <summary>A push's action (as the progress line shows it) in the words of a failure message.</summary>
    private static string Doing(string action) => action switch
    {
        "whole" => "sending the file",
        "delta" => "sending the file's changes",
        "metadata" => "setting its owner, mode and time",
        "adopt" => "recording it as HaSync's",
        "mkdir" => "making the directory",
        "symlink" => "making the symlink",
        "delete" => "deleting it",
        "read" => "reading it",
        _ => action,
    };

    /// <summary>How a path whose set-id bits the passive does not keep is reported (<paramref name="mode"/>: the active's).</summary>
    public static string SetIdNotKept(string path, uint mode) =>
        $"{path}: mode {Convert.ToString(mode, 8)} on the active; the passive's agent strips set-user-id and set-group-id bits (start it with --allow-setid to keep them)";

    /// <summary>How a path the active cannot read is reported (it is left alone on the passive, never deleted).</summary>
    public static string Unreadable(IOException e) => $"cannot read on the active, left as it is on the passive: {e.Message}";

    // A passive path is excluded when it or any parent matches: the walker never descends into an excluded directory.
    private static bool Excluded(PathFilter exclude, string path)
    {
        for (string p = path; p.Length > 1; p = TreeWalker.Parent(p))
            if (exclude.Matches(p))
                return true;
        return false;
    }

    /// <summary>What must go before the pushes (whatever stands where the active has another kind of entry, with
    /// everything below it) and the extras that go after them (when deleting); each deepest first.</summary>
    private static (List<string> Clearing, List<string> Extras) Deletions(IReadOnlyList<PathDifference> differences, bool delete)
    {
        var replaced = differences.Where(d => d.KindChanged).Select(d => d.Path).ToList();
        var clearing = differences
            .Where(d => d.Passive is not null && (d.KindChanged || replaced.Any(r => TreeWalker.Within(d.Path, r) && d.Path != r)))
            .Select(d => d.Path).OrderDescending(StringComparer.Ordinal).ToList();
        var extras = delete
            ? differences.Where(d => d.Status == PathStatus.Extra).Select(d => d.Path).Except(clearing).OrderDescending(StringComparer.Ordinal).ToList()
            : [];
        return (clearing, extras);
    }

    private static bool UsesDelta(PathDifference d) =>
        d is { Status: PathStatus.ContentDiffers, KindChanged: false, Active.Kind: EntryKind.File, Passive: { } passive }
        && passive.Size >= SignatureFormat.DeltaMinimumFileSize && d.Active.Size >= SignatureFormat.DeltaMinimumFileSize;

    private static async Task<(string Action, Task<Ack> Ack)> PushAsync(HaSyncConfig config, AgentSession session, PathDifference d,
        Dictionary<string, Task<byte[]>> signatures, ResyncStats stats, Action<int>? onRead, Signature? own, CancellationToken cancellationToken)
    {
        var entry = d.Active!;
        if (d.Status == PathStatus.Identical)
            return ("adopt", session.SendSetMetadata(entry)); // the agent records it as HaSync's (it checks the content)
        if (d.Status == PathStatus.MetadataDiffers)
            return ("metadata", session.SendSetMetadata(entry));
        switch (entry.Kind)
        {
            case EntryKind.Directory:
                return ("mkdir", session.SendMakeDirectory(entry));
            case EntryKind.Symlink:
                return ("symlink", session.SendMakeSymlink(entry));
        }
        string source = TreeWalker.FullPath(config.SourceRoot, entry.Path);
        Stream input;
        try
        {
            input = OpenSource(source, entry.Size, onRead); // opened before the request starts: a failure here is this file's alone
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ("read", Task.FromResult(new Ack(AckStatus.Failed, $"cannot read on the active: {e.Message}")));
        }
        if (signatures.TryGetValue(d.Path, out var signatureTask))
        {
            byte[]? signature = null;
            try
            {
                signature = await signatureTask.ConfigureAwait(false);
            }
            catch (AgentRequestException)
            {
                // the passive's copy went away or cannot be read: send the whole file
            }
            if (signature is not null)
            {
                var ack = session.SendPut(entry, PutEncoding.Delta, output =>
                {
                    using (input)
                    {
                        var delta = DeltaEncoder.Encode(Signature.Read(new MemoryStream(signature)), input, output, own, cancellationToken);
                        stats.LiteralBytes += delta.LiteralBytes;
                        stats.MatchedBytes += delta.CopiedBytes;
                    }
                });
                return ("delta", ack);
            }
        }
        return ("whole", SendWhole(session, entry, input, stats));
    }

    private static Task<Ack> SendWhole(AgentSession session, FileEntry entry, Stream input, ResyncStats stats) =>
        session.SendPut(entry, PutEncoding.Whole, output =>
        {
            using (input)
                stats.LiteralBytes += CopyAll(input, output, entry.Size); // counted as copied: no fstat of the source for its length
        });

    /// <summary>Copies <paramref name="input"/> to its end (see <see cref="PosixFiles.ReadToEnd"/>). The agent checks the
    /// content's hash either way.</summary>
    private static long CopyAll(Stream input, Stream output, long expectedLength)
    {
        const int Chunk = 128 * 1024;
        var buffer = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            return PosixFiles.ReadToEnd(input, buffer, Chunk, expectedLength, read => output.Write(buffer, 0, read));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>After a hash mismatch: describe the file again (it may have changed since the scan) and send it whole.</summary>
    private static async Task<(Ack, PathDifference Applied)> ResendWholeAsync(HaSyncConfig config, AgentSession session, PathDifference d, ResyncStats stats)
    {
        string source = TreeWalker.FullPath(config.SourceRoot, d.Path);
        FileEntry? fresh;
        Stream input;
        try
        {
            fresh = PosixFiles.Describe(source, d.Path)?.WithModeKept(session.KeptModeBits);
            if (fresh is not { Kind: EntryKind.File })
                return (new Ack(AckStatus.Failed, "changed on the active while being sent; the next resync or event will pick it up"), d);
            input = OpenSource(source, fresh.Size);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (new Ack(AckStatus.Failed, $"cannot read on the active: {e.Message}"), d);
        }
        var ack = SendWhole(session, fresh, input, stats);
        await session.SendFlush().ConfigureAwait(false);
        return (await ack.ConfigureAwait(false), d with { Active = fresh });
    }

    private static SourceFile OpenSource(string path, long expectedLength, Action<int>? onRead = null) =>
        new SourceFile(PosixFiles.OpenForReading(path, expectedLength), path, onRead);

    /// <summary>A file being read for a push: each read counted (for the progress line), a read error named.</summary>
    private sealed class SourceFile(FileStream file, string path, Action<int>? onRead) : ReadOnlyStream
    {
        public override int Read(Span<byte> buffer)
        {
            int read;
            try
            {
                read = file.Read(buffer);
            }
            catch (IOException e)
            {
                throw PosixFiles.Named(e, path);
            }
            onRead?.Invoke(read);
            return read;
        }

        public override long Length => file.Length;

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                file.Dispose();
            base.Dispose(disposing);
        }
    }
}
