namespace HaSync.Configuration;

/// <summary>How the agent is reached.</summary>
public enum TransportKind
{
    /// <summary>The system OpenSSH client runs the agent command on the target host.</summary>
    Ssh,
    /// <summary>The agent command is spawned directly on this machine (demo, tests, a local mirror).</summary>
    Local,
}

/// <summary>One passive node.</summary>
public sealed record TargetConfig
{
    /// <summary>Name used in logs, <c>--target</c> and reports.</summary>
    public required string Name { get; init; }
    /// <summary>ssh or local.</summary>
    public TransportKind Transport { get; init; } = TransportKind.Ssh;
    /// <summary>Host name or address (ssh only).</summary>
    public string? Host { get; init; }
    /// <summary>SSH port; absent: ssh's own configuration decides.</summary>
    public int? Port { get; init; }
    /// <summary>SSH user; absent: ssh's own configuration decides.</summary>
    public string? User { get; init; }
    /// <summary>SSH private key; absent: ssh's own configuration decides.</summary>
    public string? IdentityFile { get; init; }
    /// <summary>Extra arguments for ssh, passed as given.</summary>
    public IReadOnlyList<string> SshOptions { get; init; } = [];
    /// <summary>How often a quiet session sends a heartbeat (both ways); five without a word from the other side and it is
    /// taken for gone: the daemon reconnects, the agent exits.</summary>
    public TimeSpan Heartbeat { get; init; } = Protocol.Wire.DefaultHeartbeat;
    /// <summary>The agent's command line on the passive ("hasync" alone means this same hasync binary for the local transport).</summary>
    public IReadOnlyList<string> Command { get; init; } = DefaultCommand;

    /// <summary>Where the local transport starts the agent: the configuration file's folder, so relative paths in
    /// its command mean the same as in <c>source_root</c>.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>The agent command used when none is configured.</summary>
    public static IReadOnlyList<string> DefaultCommand { get; } = ["hasync", "serve", "--root", "/"];
}

/// <summary>The configuration file, validated.</summary>
public sealed record HaSyncConfig
{
    /// <summary>Where the configuration came from (for messages).</summary>
    public string Source { get; init; } = "";
    /// <summary>Prefix under which the listed paths are read on the active node.</summary>
    public string SourceRoot { get; init; } = "/";
    /// <summary>Files and directories (recursively) to keep identical; absolute logical paths.</summary>
    public required IReadOnlyList<string> Paths { get; init; }
    /// <summary>Glob patterns never shipped.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>Remove on the passive what was removed on the active, inside the watched set.</summary>
    public bool Delete { get; init; } = true;
    /// <summary>Glob patterns whose content is never printed (mode 0600 files count as secret too).</summary>
    public IReadOnlyList<string> Redact { get; init; } = [];
    /// <summary>Where the daemon keeps its state (the status file); outside the watched set.</summary>
    public string StateDirectory { get; init; } = DefaultStateDirectory;
    /// <summary>The daemon's timing and logging.</summary>
    public DaemonConfig Daemon { get; init; } = new();
    /// <summary>How this node knows it is the active one (the split-brain guard).</summary>
    public RoleConfig Role { get; init; } = new();
    /// <summary>The passive nodes.</summary>
    public required IReadOnlyList<TargetConfig> Targets { get; init; }

    /// <summary>The state directory when the configuration names none.</summary>
    public const string DefaultStateDirectory = "/var/lib/hasync";

    /// <summary>The daemon's status file.</summary>
    public string StatusFile => Path.Combine(StateDirectory, "status.json");
}

/// <summary>The <c>daemon:</c> section.</summary>
public sealed record DaemonConfig
{
    /// <summary>A changed path is pushed once it has been quiet this long.</summary>
    public TimeSpan QuietWindow { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>A path that keeps changing is pushed this long after its first change all the same.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A full compare against each passive's manifest this often; null: never.</summary>
    public TimeSpan? AuditInterval { get; init; }
    /// <summary>After this long without a push, what was pushed since the last self-check is compared with each passive's
    /// manifest (and the active scanned again); null: never.</summary>
    public TimeSpan? SelfCheckAfter { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A log file besides stderr; null: stderr only.</summary>
    public string? LogFile { get; init; }
}

/// <summary>How a node knows it is the active one.</summary>
public enum RoleKind
{
    /// <summary>No <c>role</c> in the configuration: counts as active, and status and check warn about it.</summary>
    Unset,
    /// <summary><c>role: always</c>: this node is the only one that ever pushes.</summary>
    Always,
    /// <summary>Active while the floating address is on a local interface.</summary>
    Vip,
    /// <summary>Active while a command exits 0 (a Pacemaker or keepalived hook).</summary>
    Command,
}

/// <summary>The <c>role:</c> setting.</summary>
public sealed record RoleConfig
{
    /// <summary>How the role is decided.</summary>
    public RoleKind Kind { get; init; } = RoleKind.Unset;
    /// <summary>The floating address (vip only).</summary>
    public System.Net.IPAddress? Vip { get; init; }
    /// <summary>The command line (command only).</summary>
    public IReadOnlyList<string> Command { get; init; } = [];
    /// <summary>The daemon checks this often (and before each batch).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>A role command that runs longer is stopped and counts as a failed check (not active).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>The folder a role command runs in (the configuration file's).</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>As status and messages show it.</summary>
    public string Describe() => Kind switch
    {
        RoleKind.Always => "always active",
        RoleKind.Vip => $"vip {Vip}",
        RoleKind.Command => $"command {string.Join(' ', Command)}",
        _ => "none configured (counts as active)",
    };
}
