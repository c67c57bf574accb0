using HaSync.Scanning;

namespace HaSync.Configuration;

/// <summary>
/// What a valid configuration meets on this node that may still be wrong: listed paths that do not exist on the active
/// (a typo, or a package not installed yet: warned about, and watched for), and a log file that cannot be written
/// (fatal for the daemon, which would otherwise run without the log it was told to keep).
/// </summary>
public static class ConfigCheck
{
    /// <summary>The listed paths absent on this node now, under its source root.</summary>
    public static List<string> MissingPaths(HaSyncConfig config) =>
        config.Paths.Where(p => !PosixFiles.TryLstat(TreeWalker.FullPath(config.SourceRoot, p), out _)).ToList();

    /// <summary>How a missing listed path is reported.</summary>
    public static string Missing(HaSyncConfig config, string path) =>
        $"{config.Source}: paths: {path} does not exist on this node{(config.SourceRoot == "/" ? "" : $" (under {config.SourceRoot})")}; it is synced once it appears";

    /// <summary>Why the daemon's log file cannot be written, or null (it is created if missing, as the daemon would).</summary>
    public static string? LogFileProblem(HaSyncConfig config)
    {
        if (config.Daemon.LogFile is not { } file)
            return null;
        try
        {
            using var _ = new FileStream(file, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"{config.Source}: daemon.log_file {file}: cannot be written: {e.Message}";
        }
    }

    /// <summary>Every warning, in the order an admin fixes them.</summary>
    public static List<string> Warnings(HaSyncConfig config) => [.. MissingPaths(config).Select(p => Missing(config, p))];
}
