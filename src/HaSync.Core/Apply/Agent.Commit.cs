using HaSync.Guard;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>The group commit: answers held until their batch is on disk, then sent (see the implementation notes).</summary>
public sealed partial class Agent
{
    private static void Ack(FrameWriter writer, uint id, AckStatus status, string message) => AckFrames.Write(writer, [(id, status, message)]);

    private static void FlushAnswers(FrameWriter writer) => writer.Flush();

    /// <summary>The change is applied; its ack waits for the commit that makes it durable.</summary>
    private void Defer(uint id, TreeDirectory directory)
    {
        _sync.Touch(directory);
        _deferredAcks.Add((id, AckStatus.Ok, ""));
    }

    /// <summary><see cref="Defer(uint, TreeDirectory)"/> for a change made in a directory the caller is done with.</summary>
    private void DeferAndClose(uint id, TreeDirectory directory)
    {
        using (directory)
            Defer(id, directory);
    }

    /// <summary>A request about a path whose new content still waits in the batch sees it in place first.</summary>
    private void CommitIfPending(string logicalPath, FrameWriter writer)
    {
        if (_sealedPaths.Contains(logicalPath))
            Commit(writer);
    }

    /// <summary>Adds a complete temp file to the batch; it and every directory above it are now "pending" for
    /// <see cref="CommitIfPending"/> (one set lookup a request, however large the batch).</summary>
    private void Seal(uint id, FileEntry entry, TreeFile file)
    {
        _sealed.Add((id, entry, file));
        for (string path = entry.Path; !PathGuard.IsRoot(path) && _sealedPaths.Add(path); path = TreeWalker.Parent(path))
        {
        }
        _batchBytes += entry.Size;
        Defer(id, file.Directory);
    }

    /// <summary>Starts writing back the files sealed since the last call (the large ones started when sealed): called
    /// while the sender's next frames are on their way, it gives the disk the work the commit's flush would otherwise do
    /// while the sender waits for its acks.</summary>
    private void StartWritebackWhileIdle()
    {
        for (; _writebackStarted < _sealed.Count; _writebackStarted++)
            _sealed[_writebackStarted].File.StartWriteback();
    }

    /// <summary>Makes the batch durable and visible, then sends its acks (see the implementation notes). Each change gets
    /// its own outcome: a flush that fails before the renames fails the files not yet published, and a change already in
    /// place is never reported as not made, only as not confirmed on disk (the sender then learns what stands there
    /// rather than believing the passive still holds the old version).</summary>
    private void Commit(FrameWriter writer)
    {
        guard.ForgetOpened(); // the directories the batch was written in are looked up anew by the next one
        if (_deferredAcks.Count == 0)
            return;
        var acks = new List<(uint Id, AckStatus Status, string Message)>(_deferredAcks);
        var puts = _sealed.Select(s => s.Id).ToHashSet();
        void Fail(Func<uint, bool> which, AckStatus status, string message)
        {
            for (int i = 0; i < acks.Count; i++)
                if (acks[i].Status == AckStatus.Ok && which(acks[i].Id))
                    acks[i] = (acks[i].Id, status, message);
        }
        try
        {
            foreach (var (_, entry, _) in _sealed)
                Journal.Intend(entry);
            bool perInode = _sync.PerInode(_sealed.Count); // see BatchSync
            Journal.Flush(durable: false); // made durable below, before any file is put in place
            if (!perInode)
            {
                _sync.Touch(stateDirectory); // the journal's file system is synced too
                try
                {
                    _sync.SyncAll(perInode); // the temp files and the intents
                }
                catch (IOException e)
                {
                    // Nothing of the batch's files is published; the changes made in place (directories, links, deletes, metadata) stand.
                    log.WriteLine($"hasync serve: commit of {acks.Count} changes: {e.Message}");
                    Fail(puts.Contains, PosixFiles.IsNoSpace(e) ? AckStatus.NoSpace : AckStatus.Failed, $"not written: the passive's file system could not be flushed ({e.Message})");
                    Fail(_ => true, AckStatus.Failed, $"made, but the passive's file system could not confirm it is on disk ({e.Message})");
                    return;
                }
            }
            var durable = new List<(uint Id, FileEntry Entry, TreeFile File)>(_sealed.Count);
            foreach (var (id, entry, file) in _sealed)
            {
                try
                {
                    file.MakeDurable(fileSystemSynced: !perInode); // a link or rename made durable before the data would leave an empty file after a crash
                    durable.Add((id, entry, file));
                }
                catch (IOException e)
                {
                    // Not published: the current file stays; the other changes stand.
                    log.WriteLine($"hasync serve: {e.Message}");
                    Fail(a => a == id, PosixFiles.IsNoSpace(e) ? AckStatus.NoSpace : AckStatus.Failed, $"not written: {e.Message}");
                }
            }
            // The intents are on disk before any link or rename. Their fsync comes after the temp files': the file system's commit for
            // those has then carried the journal's new size as well (ext4, XFS), so this one writes a block and flushes, where
            // first would have cost a commit of its own (one-file edits: 3 journal commits a batch became 2).
            if (perInode && durable.Count > 0)
                Journal.Flush(durable: true);
            if (durable.Count > 0 && _claim is not null)
                _epochs.EnsureStillCurrent(_claim); // a later active claimed this node while the batch came in: publish none of it
            foreach (var (id, entry, file) in durable)
            {
                try
                {
                    Record(entry, file.Directory, now: file.Publish());
                }
                catch (IOException e)
                {
                    Fail(a => a == id, AckStatus.Failed, e.Message);
                    log.WriteLine($"hasync serve: {entry.Path}: {e.Message}");
                }
            }
            foreach (string problem in _directories.Apply())
                log.WriteLine($"hasync serve: commit: {problem}");
            try
            {
                // The records of what now stands need not be on disk before the acks: after a crash, the intents (on disk)
                // accept what was renamed. They go with the next batch's intents, or at the end of the session.
                Journal.Flush(durable: false);
                _sync.SyncAll(perInode); // the links, renames and changes in place
            }
            catch (IOException e)
            {
                log.WriteLine($"hasync serve: commit of {acks.Count} changes: {e.Message}");
                Fail(_ => true, AckStatus.Failed, $"made, but the passive's file system could not confirm it is on disk ({e.Message})");
            }
        }
        catch (FencedException e)
        {
            log.WriteLine($"hasync serve: {e.Message}");
            Fail(puts.Contains, AckStatus.Fenced, e.Message);
        }
        catch (IOException e)
        {
            // The journal could not be written: the sender learns what stands on the passive before it tries again.
            log.WriteLine($"hasync serve: commit of {acks.Count} changes failed: {e.Message}");
            Fail(_ => true, AckStatus.Failed, $"not recorded in the passive's journal, may or may not be in place: {e.Message}");
        }
        finally
        {
            foreach (var (_, _, file) in _sealed)
                file.Dispose();
            _sealed.Clear();
            _sealedPaths.Clear();
            _deferredAcks.Clear();
            _sync.Clear();
            _directories.Clear();
            _batchBytes = 0;
            _writebackStarted = 0;
            AckFrames.Write(writer, acks);
        }
    }
}
