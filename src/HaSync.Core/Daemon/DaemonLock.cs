using HaSync.Configuration;

namespace HaSync.Daemon;

/// <summary>
/// One daemon per state directory: a second one started by mistake would push the same changes twice and
/// overwrite the first one's status. Held (an exclusive flock on <c>daemon.lock</c>, which holds the pid) until
/// disposed; the kernel drops it if the process dies, so a SIGKILL never leaves a stale lock behind.
/// </summary>
public sealed class DaemonLock : IDisposable
{
    private readonly FileStream _file;

    private DaemonLock(FileStream file) => _file = file;

    /// <summary>Takes the lock for <paramref name="config"/>'s state directory, or throws naming the daemon that holds it.</summary>
    public static DaemonLock Acquire(HaSyncConfig config)
    {
        string path = LockPath(config);
        try
        {
            Guard.StateDirectory.Ensure(config.StateDirectory);
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            if (!Interop.Libc.TryLockExclusive(file.SafeFileHandle, path))
            {
                file.Dispose();
                string holder = RunningPid(config) is int pid ? $" (pid {pid})" : "";
                throw new HaSyncException($"{path}: another hasync daemon{holder} already runs with the state directory {config.StateDirectory}");
            }
            file.SetLength(0);
            using (var writer = new StreamWriter(file, leaveOpen: true))
                writer.WriteLine(Environment.ProcessId);
            return new DaemonLock(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HaSyncException($"{path}: cannot take the daemon lock: {e.Message}");
        }
    }

    /// <summary>The pid of the daemon running with <paramref name="config"/>'s state directory, or null when none is.</summary>
    public static int? RunningPid(HaSyncConfig config)
    {
        string path = LockPath(config);
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (Interop.Libc.TryLockExclusive(file.SafeFileHandle, path))
                return null; // nobody holds it (closing the file lets it go again)
            using var reader = new StreamReader(file);
            return int.TryParse(reader.ReadLine(), out int pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string LockPath(HaSyncConfig config) => Path.Combine(config.StateDirectory, "daemon.lock");

    /// <summary>Releases the lock.</summary>
    public void Dispose() => _file.Dispose();
}
