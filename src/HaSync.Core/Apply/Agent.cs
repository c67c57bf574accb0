using HaSync.Delta;
using HaSync.Interop;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>
/// The receiving side, <c>hasync serve</c>: reads requests from stdin, answers on stdout, logs to stderr.
/// </summary>
/// <remarks>
/// Implementation notes: requests are handled one at a time, in order, so answers come back in the order
/// the sender pipelined them. A request that fails (confinement, a full disk, a corrupt delta) gets a
/// Failed ack and the session goes on; only a broken frame ends it, because after one the stream cannot
/// be trusted to be in step. Every write goes through <see cref="PathGuard"/> and lands with a rename, so a
/// reader of the passive sees the old complete file until the new one is complete, on disk and owned.
/// </remarks>
public sealed class Agent(PathGuard guard, TextWriter log)
{
    /// <summary>Serves one session; returns the process exit code (0 = the sender said goodbye or closed).</summary>
    public async Task<int> ServeAsync(Stream input, Stream output, CancellationToken cancellationToken = default)
    {
        var reader = new FrameReader(input);
        var writer = new FrameWriter(output);
        try
        {
            var hello = await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ProtocolException("reading hello: connection closed before the first frame");
            CheckHello(hello);
            var welcome = new PayloadWriter().U32(Wire.Magic).U16(Wire.Version).Text(guard.Root).U32((uint)guard.Allowed.Count);
            foreach (string allowed in guard.Allowed)
                welcome.Text(allowed);
            await writer.WriteAsync(FrameType.Welcome, welcome, cancellationToken).ConfigureAwait(false);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);

            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false) is { } frame)
            {
                if (frame.Type == FrameType.Goodbye)
                    return 0;
                await HandleAsync(frame, reader, writer, cancellationToken).ConfigureAwait(false);
                await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            return 0;
        }
        catch (ProtocolException e)
        {
            log.WriteLine($"hasync serve: protocol error, closing the session: {e.Message}");
            return 2;
        }
    }

    private static void CheckHello(Frame hello)
    {
        if (hello.Type != FrameType.Hello)
            throw new ProtocolException($"reading hello: got a {hello.Type} frame first");
        var payload = hello.Reader();
        uint magic = payload.U32("magic");
        ushort version = payload.U16("version");
        if (magic != Wire.Magic)
            throw new ProtocolException($"reading hello: bad magic 0x{magic:x8} (is the other side hasync?)");
        if (version != Wire.Version)
            throw new ProtocolException($"reading hello: protocol version {version}, this agent speaks {Wire.Version}: install the same hasync on both nodes");
        payload.End();
    }

    private async Task HandleAsync(Frame frame, FrameReader reader, FrameWriter writer, CancellationToken cancellationToken)
    {
        var payload = frame.Reader();
        uint id = payload.U32("id");
        string subject = "";
        try
        {
            switch (frame.Type)
            {
                case FrameType.ManifestRequest:
                    uint count = payload.U32("count");
                    var paths = new List<string>();
                    for (uint i = 0; i < count; i++)
                        paths.Add(payload.Text("path"));
                    payload.End();
                    await SendManifestAsync(id, paths, writer, cancellationToken).ConfigureAwait(false);
                    return;
                case FrameType.SignatureRequest:
                    subject = payload.Text("path");
                    payload.End();
                    await SendDataAsync(id, Signature(guard.Resolve(subject)), writer, cancellationToken).ConfigureAwait(false);
                    return;
                case FrameType.ReadRequest:
                    subject = payload.Text("path");
                    long max = payload.I64("max");
                    payload.End();
                    await SendDataAsync(id, ReadPrefix(guard.Resolve(subject), max), writer, cancellationToken).ConfigureAwait(false);
                    return;
                case FrameType.PutFile:
                    var entry = EntryCodec.Entry(ref payload);
                    var encoding = (PutEncoding)payload.U8("encoding");
                    payload.End();
                    subject = entry.Path;
                    var (status, message) = await Task.Run(() => Put(id, entry, encoding, reader), cancellationToken).ConfigureAwait(false);
                    await AckAsync(writer, id, status, message, cancellationToken).ConfigureAwait(false);
                    return;
                case FrameType.MakeDirectory:
                case FrameType.MakeSymlink:
                case FrameType.SetMetadata:
                    var target = EntryCodec.Entry(ref payload);
                    payload.End();
                    subject = target.Path;
                    if (frame.Type == FrameType.MakeDirectory)
                        MakeDirectory(target);
                    else if (frame.Type == FrameType.MakeSymlink)
                        MakeSymlink(target);
                    else
                        SetMetadata(target);
                    break;
                case FrameType.Delete:
                    subject = payload.Text("path");
                    payload.End();
                    Delete(subject);
                    break;
                default:
                    throw new ProtocolException($"reading request {id}: a {frame.Type} frame is not a request");
            }
            await AckAsync(writer, id, AckStatus.Ok, "", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            log.WriteLine($"hasync serve: {frame.Type} {subject}: {e.Message}");
            await AckAsync(writer, id, AckStatus.Failed, e.Message, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task AckAsync(FrameWriter writer, uint id, AckStatus status, string message, CancellationToken cancellationToken) =>
        await writer.WriteAsync(FrameType.Ack, new PayloadWriter().U32(id).U8((byte)status).Text(message), cancellationToken).ConfigureAwait(false);

    private async Task SendManifestAsync(uint id, List<string> paths, FrameWriter writer, CancellationToken cancellationToken)
    {
        foreach (string path in paths)
            guard.Resolve(path); // refuses paths outside the allowed set or behind a symlink before listing anything
        foreach (var entry in TreeWalker.Walk(guard.Root, paths, PathFilter.None, withHash: true, cancellationToken))
            await writer.WriteAsync(FrameType.ManifestEntry, new PayloadWriter().U32(id).Entry(entry), cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(FrameType.ManifestEnd, new PayloadWriter().U32(id), cancellationToken).ConfigureAwait(false);
    }

    private static async Task SendDataAsync(uint id, byte[] data, FrameWriter writer, CancellationToken cancellationToken)
    {
        for (int offset = 0; offset < data.Length; offset += Wire.DataChunk)
        {
            var chunk = data.AsSpan(offset, Math.Min(Wire.DataChunk, data.Length - offset));
            await writer.WriteAsync(FrameType.Data, new PayloadWriter().U32(id).Bytes(chunk), cancellationToken).ConfigureAwait(false);
        }
        await writer.WriteAsync(FrameType.DataEnd, new PayloadWriter().U32(id), cancellationToken).ConfigureAwait(false);
    }

    private static byte[] Signature(string fullPath)
    {
        using var basis = OpenRegularFile(fullPath);
        var signature = new MemoryStream();
        SignatureGenerator.Generate(basis, signature, SignatureParameters.Choose(basis.Length));
        return signature.ToArray();
    }

    private static byte[] ReadPrefix(string fullPath, long max)
    {
        using var file = OpenRegularFile(fullPath);
        var buffer = new byte[(int)Math.Clamp(Math.Min(max, file.Length), 0, 64 << 20)];
        return buffer[..file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false)];
    }

    private static FileStream OpenRegularFile(string fullPath)
    {
        if (!PosixFiles.TryLstat(fullPath, out var st) || PosixFiles.KindOf(st) != EntryKind.File)
            throw new IOException($"{fullPath}: not a regular file on the passive");
        return new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
    }

    /// <summary>Receives a file's data (whole or a delta against the current copy) into a temp file beside it,
    /// checks length and hash, sets owner, mode and mtime, then renames it into place and fsyncs the directory.
    /// On any failure the temp file goes, the current file stays, and the request's remaining data is drained.</summary>
    private (AckStatus, string) Put(uint id, FileEntry entry, PutEncoding encoding, FrameReader reader)
    {
        var data = new DataFrameReadStream(reader, id);
        try
        {
            if (entry.Kind != EntryKind.File || entry.Hash is null)
                throw new IOException($"{entry.Path}: a PutFile must describe a regular file with its hash");
            string full = guard.Resolve(entry.Path);
            if (PosixFiles.TryLstat(full, out var existing) && PosixFiles.KindOf(existing) == EntryKind.Directory)
                throw new IOException($"{full}: is a directory on the passive");
            EnsureParent(full);
            using var file = AtomicFile.Create(full, privateUntilCommit: true);
            var hashing = new HashingWriteStream(file.Stream);
            if (encoding == PutEncoding.Delta)
            {
                using var basis = OpenRegularFile(full);
                DeltaPatcher.Apply(basis, data, hashing, maxOutputLength: entry.Size);
            }
            else
            {
                CopyAtMost(data, hashing, entry.Size, full);
            }
            data.Drain();
            if (hashing.Written != entry.Size || !hashing.Finish().AsSpan().SequenceEqual(entry.Hash))
            {
                string what = $"{full}: received {hashing.Written} bytes whose hash differs from the active's ({entry.Size} bytes, {entry.HashHex})";
                log.WriteLine($"hasync serve: {what}");
                return (AckStatus.HashMismatch, what); // a bad delta, or a file that changed on the active while it was sent
            }
            file.Commit(durable: true, beforeRename: temp => PosixFiles.ApplyMetadata(temp, entry));
            return (AckStatus.Ok, "");
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            data.Drain();
            log.WriteLine($"hasync serve: PutFile {entry.Path}: {e.Message}");
            return (AckStatus.Failed, e.Message);
        }
    }

    private static void CopyAtMost(Stream from, Stream to, long limit, string target)
    {
        byte[] buffer = new byte[Wire.DataChunk];
        long total = 0;
        int read;
        while ((read = from.Read(buffer)) > 0)
        {
            total += read;
            if (total > limit)
                throw new IOException($"{target}: more data than the announced {limit} bytes");
            to.Write(buffer, 0, read);
        }
    }

    private static void EnsureParent(string fullPath)
    {
        string parent = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(parent))
            Directory.CreateDirectory(parent); // the guard has checked that nothing on the way is a symlink
    }

    private void MakeDirectory(FileEntry entry)
    {
        string full = guard.Resolve(entry.Path);
        if (PosixFiles.TryLstat(full, out var st))
        {
            if (PosixFiles.KindOf(st) != EntryKind.Directory)
                throw new IOException($"{full}: exists on the passive and is not a directory");
        }
        else
        {
            EnsureParent(full);
            Directory.CreateDirectory(full);
        }
        PosixFiles.ApplyMetadata(full, entry);
    }

    private void MakeSymlink(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
            throw new ConfinementException("refusing to replace the root with a symlink");
        string full = guard.Resolve(entry.Path);
        if (PosixFiles.TryLstat(full, out var st) && PosixFiles.KindOf(st) == EntryKind.Directory)
            throw new IOException($"{full}: is a directory on the passive");
        EnsureParent(full);
        string temp = AtomicFile.TempPathBeside(full);
        File.CreateSymbolicLink(temp, entry.LinkTarget ?? throw new IOException($"{entry.Path}: symlink without a target"));
        try
        {
            PosixFiles.ApplyMetadata(temp, entry);
            Libc.Rename(temp, full);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        Libc.FsyncDirectory(Path.GetDirectoryName(full)!);
    }

    private void SetMetadata(FileEntry entry)
    {
        string full = guard.Resolve(entry.Path);
        if (!PosixFiles.TryLstat(full, out var st))
            throw new IOException($"{full}: does not exist on the passive");
        if (PosixFiles.KindOf(st) != entry.Kind)
            throw new IOException($"{full}: is a {PosixFiles.KindOf(st)} on the passive, not a {entry.Kind}");
        PosixFiles.ApplyMetadata(full, entry);
    }

    private void Delete(string logicalPath)
    {
        if (PathGuard.IsRoot(logicalPath))
            throw new ConfinementException("refusing to delete the root");
        string full = guard.Resolve(logicalPath);
        if (!PosixFiles.TryLstat(full, out var st))
            return; // already gone: deleting is idempotent
        if (PosixFiles.KindOf(st) == EntryKind.Directory)
        {
            if (Directory.EnumerateFileSystemEntries(full).Any())
                throw new IOException($"{full}: directory not empty on the passive (it holds excluded or unlisted files); left in place");
            Directory.Delete(full);
        }
        else
        {
            File.Delete(full);
        }
        Libc.FsyncDirectory(Path.GetDirectoryName(full)!);
    }
}
