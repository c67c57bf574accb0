using HaSync.Configuration;
using HaSync.Daemon;
using HaSync.Scanning;
using HaSync.Sync;
using Microsoft.Extensions.Logging;

namespace HaSync.Tests.Support;

/// <summary>Collects log lines (the daemon's own messages) so tests can assert what it said.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
                return [.. _lines];
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines)
            _lines.Add($"{logLevel}: {formatter(state, exception)}");
    }
}

/// <summary>
/// A <see cref="SyncDaemon"/> running in the test process on a real active folder with real inotify, pushing to
/// <paramref name="target"/>'s passive. Stopped (and flushed) at dispose.
/// </summary>
internal sealed class DaemonHarness : IAsyncDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;

    public DaemonHarness(string activeRoot, string passiveRoot, TargetConfig target, string stateDirectory, string[]? exclude = null, PusherOptions? options = null,
        Func<HaSyncConfig, HaSyncConfig>? configure = null)
    {
        ActiveRoot = activeRoot;
        PassiveRoot = passiveRoot;
        Config = TestTree.Config(activeRoot, target, exclude ?? []) with { StateDirectory = stateDirectory };
        Config = configure?.Invoke(Config) ?? Config;
        Daemon = new SyncDaemon(Config, Log, TimeProvider.System, options ?? FastRetries);
        _running = Task.Run(() => Daemon.RunAsync(_stop.Token));
    }

    private const long DefaultQueuedEvents = 16384; // fs.inotify.max_queued_events

    /// <summary>Starts a daemon while an inotify limit (fs.inotify.<paramref name="limit"/>) holds <paramref name="value"/>: the
    /// kernel reads it when the daemon's inotify instance is created. The limit is put back once <paramref name="whileLimited"/>
    /// is done, whatever happens; the daemon is stopped if that fails.</summary>
    public static async Task<DaemonHarness> UnderInotifyLimitAsync(string limit, string value, Func<DaemonHarness> start, Func<DaemonHarness, Task> whileLimited)
    {
        string path = $"/proc/sys/fs/inotify/{limit}";
        string original = File.ReadAllText(path).Trim();
        // A queue shorter than the kernel's default is what a run killed in here leaves (or one running beside it): put
        // back, it would overflow every watcher on the machine, the benchmarks' included, until the next reboot.
        if (limit == "max_queued_events" && long.Parse(original, System.Globalization.CultureInfo.InvariantCulture) < DefaultQueuedEvents)
            original = DefaultQueuedEvents.ToString(System.Globalization.CultureInfo.InvariantCulture);
        File.WriteAllText(path, value);
        DaemonHarness? daemon = null;
        try
        {
            daemon = start();
            await whileLimited(daemon);
            return daemon;
        }
        catch when (daemon is not null)
        {
            await daemon.DisposeAsync();
            throw;
        }
        finally
        {
            File.WriteAllText(path, original);
        }
    }

    /// <summary>Short backoffs, so fault tests do not wait for the production ones.</summary>
    public static PusherOptions FastRetries => new() { InitialBackoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromSeconds(1), RetryDelay = TimeSpan.FromMilliseconds(200) };

    public string ActiveRoot { get; }
    public string PassiveRoot { get; }
    public HaSyncConfig Config { get; }
    public SyncDaemon Daemon { get; }
    public ListLogger Log { get; } = new();

    public string Active(string relative) => Path.Join(ActiveRoot, "etc/bm", relative);
    public string Passive(string relative) => Path.Join(PassiveRoot, "etc/bm", relative);

    /// <summary>The daemon's status file, once it has one.</summary>
    public DaemonSnapshot Status() => StatusFile.Read(Config.StatusFile);

    /// <summary><c>hasync check</c> on this daemon's status file: exit code and line.</summary>
    public (int Code, string Line) Check() => Cli("check");

    /// <summary><c>hasync status --json</c> on this daemon's state, as a monitoring script reads it.</summary>
    public System.Text.Json.JsonElement StatusJson()
    {
        var (_, json) = Cli("status", "--json");
        return System.Text.Json.JsonDocument.Parse(json).RootElement;
    }

    private (int Code, string Output) Cli(params string[] verb)
    {
        string config = Path.Combine(Config.StateDirectory, "check.yaml");
        File.WriteAllText(config, $"paths: [/etc/bm]\nstate_dir: {Config.StateDirectory}\ntargets:\n  - name: local\n    transport: local\n");
        var (code, stdout, stderr) = Tools.Run(Path.Combine(AppContext.BaseDirectory, "hasync"), [.. verb, "-c", config]);
        return (code, System.Text.Encoding.UTF8.GetString(stdout) + stderr);
    }

    /// <summary>Waits until the first target is connected (its start-up resync done).</summary>
    public async Task WaitConnectedAsync()
    {
        await Eventually(() => File.Exists(Config.StatusFile) && Status().Targets[0].Connected, "the daemon to connect");
    }

    /// <summary>Waits until the passive holds what the active holds, judged by the test's own oracle (stat and SHA-256, not
    /// the product's comparison); on timeout, fails with the differences and the log.</summary>
    public async Task WaitIdenticalAsync()
    {
        await Eventually(() => Convergence.Differences(this).Count == 0, "the passive to converge", () => string.Join("\n", Convergence.Differences(this)));
    }

    public async Task Eventually(Func<bool> condition, string what, Func<string>? explain = null)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            try
            {
                if (condition())
                    return;
            }
            catch (IOException)
            {
                // a file changing under the comparison: look again
            }
            if (_running.IsCompleted)
                await _running; // the daemon died: show why
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}: {explain?.Invoke()}\nlog:\n{string.Join("\n", Log.Lines)}");
            await Task.Delay(10);
        }
    }

    /// <summary>Stops the daemon (it pushes what is queued first).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _running.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the daemon did not stop within 30 s; log:\n{string.Join("\n", Log.Lines)}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_running.IsCompleted)
            await StopAsync();
        _stop.Dispose();
    }
}
