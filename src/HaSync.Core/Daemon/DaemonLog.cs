using Microsoft.Extensions.Logging;

namespace HaSync.Daemon;

/// <summary>Every message the daemon logs, in one place. Each names the target and path it concerns, and the cause.</summary>
internal static partial class DaemonLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "watching {Paths} under {Root}: {Watches} directories")]
    public static partial void Watching(this ILogger log, string paths, string root, int watches);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Problem}")]
    public static partial void WatchProblem(this ILogger log, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Path}: watched again")]
    public static partial void WatchRestored(this ILogger log, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "inotify queue overflowed (fs.inotify.max_queued_events = {Limit}): events were lost, scanning the whole watched set")]
    public static partial void QueueOverflow(this ILogger log, string limit);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Target}: starting the agent: {Command}")]
    public static partial void Connecting(this ILogger log, string target, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Target}: the agent says: {Line}")]
    public static partial void AgentSaid(this ILogger log, string target, string line);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Target}: connected; start-up resync: {Scanned} scanned, {Sent} files sent, {Others} dirs/links made, {Metadata} metadata fixed, {Deleted} deleted, {Failed} failed in {Seconds:F2} s")]
    public static partial void Resynced(this ILogger log, string target, int scanned, int sent, int others, int metadata, int deleted, int failed, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Target}: audit: {Sent} files sent, {Metadata} metadata fixed, {Deleted} deleted, {Failed} failed")]
    public static partial void Audited(this ILogger log, string target, int sent, int metadata, int deleted, int failed);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Target}: {Changes} changes pushed in {Milliseconds} ms (scan {ScanMilliseconds} ms)")]
    public static partial void Pushed(this ILogger log, string target, int changes, long milliseconds, long scanMilliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Target}: {Note}")]
    public static partial void SetIdNotKept(this ILogger log, string target, string note);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void ConfigWarning(this ILogger log, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Problem}")]
    public static partial void HashCacheProblem(this ILogger log, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Target}: {Failure}; it will be tried again")]
    public static partial void PushFailed(this ILogger log, string target, string failure);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Target}: {Cause}; reconnecting in {Seconds} s (changes meanwhile are kept, and a resync follows)")]
    public static partial void SessionLost(this ILogger log, string target, string cause, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Target}: still unreachable, for the same cause; next try in {Seconds} s")]
    public static partial void StillDown(this ILogger log, string target, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "stopping: pushing {Pending} queued changes (at most {Seconds} s)")]
    public static partial void Stopping(this ILogger log, int pending, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Target}: stopped with changes not pushed: {Cause}; the next start-up resync sends them")]
    public static partial void StoppedUnflushed(this ILogger log, string target, string cause);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path}: cannot write the status file: {Cause}")]
    public static partial void StatusNotWritten(this ILogger log, string path, string cause);

    [LoggerMessage(Level = LogLevel.Information, Message = "active ({Detail}): took epoch {Epoch}; pushing after a guarded resync")]
    public static partial void BecameActive(this ILogger log, string detail, long epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "no role check is configured: this node counts as active and pushes; set 'role:' (vip, command or always) so that a passive node never does")]
    public static partial void NoRoleCheck(this ILogger log);

    [LoggerMessage(Level = LogLevel.Warning, Message = "no longer active ({Detail}): pushes stop, sessions close")]
    public static partial void NoLongerActive(this ILogger log, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "passive ({Detail}): standing by, not pushing")]
    public static partial void StandingBy(this ILogger log, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "role check failed, not pushing: {Detail}")]
    public static partial void RoleCheckFailed(this ILogger log, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "not taking the active role: {Detail}")]
    public static partial void NotTakingTerm(this ILogger log, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "SIGHUP: checking the role and retrying failed paths and conflicts now")]
    public static partial void RetryingNow(this ILogger log);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Target}: drift repaired: {Path}: the daemon believed the passive held {Believed}, it held {Held}; repaired (unless someone changed the passive by hand, a HaSync bug: please report it)")]
    public static partial void DriftRepaired(this ILogger log, string target, string path, string believed, string held);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Target}: the passive would not list {Paths} to say what it holds there: {Cause}")]
    public static partial void RelearnRefused(this ILogger log, string target, string paths, string cause);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Target}: self-check of {Roots} subtree(s), {Entries} entries: {Drift} drifted, {Milliseconds} ms")]
    public static partial void SelfChecked(this ILogger log, string target, int roots, int entries, int drift, long milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Target}: self-check: {Count} change(s) on the active that no event had announced yet, pushed: {Paths}")]
    public static partial void UnannouncedChanges(this ILogger log, string target, int count, string paths);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Target}: conflict: {Message}")]
    public static partial void Conflict(this ILogger log, string target, string message);
}
