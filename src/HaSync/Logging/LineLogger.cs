using Microsoft.Extensions.Logging;

namespace HaSync.Cli.Logging;

/// <summary>
/// The daemon's log: one line per message, to stderr and, when the configuration names one, to a file. Times are UTC and
/// say so (<c>2026-12-02 06:06:11.419Z INF …</c>), as <c>status</c> prints them. Under journald (stderr is the stream
/// <c>JOURNAL_STREAM</c> names) a line carries its syslog priority instead (<c>&lt;3&gt;</c> error … <c>&lt;7&gt;</c> debug) and no time:
/// journald adds its own, and <c>journalctl -p err</c> then shows the errors and only them. The file always has times.
/// </summary>
internal sealed class LineLoggerProvider : ILoggerProvider
{
    private readonly LogLevel _minimum;
    private readonly bool _journal;
    private readonly StreamWriter? _file;
    private readonly Lock _lock = new();

    /// <param name="minimum">The lowest level written (categories of the framework: warnings and above only).</param>
    /// <param name="logFile">A file to append every line to as well, or null.</param>
    /// <exception cref="IOException">The log file cannot be opened.</exception>
    public LineLoggerProvider(LogLevel minimum, string? logFile)
    {
        _minimum = minimum;
        _journal = StderrIsJournal();
        if (logFile is not null)
            _file = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName.StartsWith("Microsoft.", StringComparison.Ordinal) ? LogLevel.Warning : _minimum);

    private void Write(LogLevel level, string message, Exception? exception)
    {
        if (exception is not null)
            message = $"{message}\n{exception}";
        var now = DateTime.UtcNow;
        string stamped = $"{now:yyyy-MM-dd HH:mm:ss.fff}Z {Abbreviation(level)} {message}";
        lock (_lock)
        {
            // journald takes each line as its own record: a priority on each, so a stack trace stays with its level.
            Console.Error.WriteLine(_journal ? string.Join('\n', message.Split('\n').Select(line => $"<{Priority(level)}>{line}")) : stamped);
            _file?.WriteLine(stamped);
        }
    }

    private static string Abbreviation(LogLevel level) => level switch
    {
        LogLevel.Trace => "TRC",
        LogLevel.Debug => "DBG",
        LogLevel.Information => "INF",
        LogLevel.Warning => "WRN",
        LogLevel.Error => "ERR",
        _ => "CRT",
    };

    /// <summary>The syslog priority (sd-daemon(3)'s prefixes) of a level.</summary>
    internal static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    /// <summary>True when stderr is the journal stream systemd connected (its device and inode are JOURNAL_STREAM's), not
    /// merely a process that inherited the variable.</summary>
    private static bool StderrIsJournal()
    {
        if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not { } stream || stream.Split(':') is not [var device, var inode])
            return false;
        return Mono.Unix.Native.Syscall.fstat(2, out var st) == 0 && device == st.st_dev.ToString() && inode == st.st_ino.ToString();
    }

    /// <inheritdoc/>
    public void Dispose() => _file?.Dispose();

    private sealed class Logger(LineLoggerProvider provider, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
                provider.Write(logLevel, formatter(state, exception), exception);
        }
    }
}
