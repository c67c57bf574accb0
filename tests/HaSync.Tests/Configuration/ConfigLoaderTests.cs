using HaSync.Configuration;

namespace HaSync.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    private const string Valid = """
        source_root: /
        paths:
          - /etc/bm
          - /etc/aliases/
        exclude: ["*.swp", "*~"]
        delete: false
        redact: ["*.key"]
        state_dir: /run/hasync
        daemon:
          quiet_ms: 80
          max_delay_ms: 2000
          audit_minutes: 30
          log_file: /var/log/hasync.log
        targets:
          - name: passive
            host: bm2.example.com
            port: 2222
            user: root
            identity_file: /etc/hasync/id_ed25519
            ssh_options: ["-F", "/etc/hasync/ssh_config"]
          - name: mirror
            transport: local
            command: [hasync, serve, --root, /srv/mirror]
        """;

    private static string Error(string yaml) => Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "/etc/hasync/hasync.yaml")).Message;

    [Fact]
    public void ReadsEverySetting()
    {
        var config = ConfigLoader.Parse(Valid, "/etc/hasync/hasync.yaml");
        Assert.Equal(["/etc/bm", "/etc/aliases"], config.Paths);
        Assert.Equal(["*.swp", "*~"], config.Exclude);
        Assert.False(config.Delete);
        Assert.Equal(["*.key"], config.Redact);
        Assert.Equal(("/run/hasync", "/run/hasync/status.json"), (config.StateDirectory, config.StatusFile));
        Assert.Equal((TimeSpan.FromMilliseconds(80), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(30), "/var/log/hasync.log"),
            (config.Daemon.QuietWindow, config.Daemon.MaxDelay, config.Daemon.AuditInterval, config.Daemon.LogFile));
        var ssh = config.Targets[0];
        Assert.Equal((TransportKind.Ssh, "bm2.example.com", 2222, "root", "/etc/hasync/id_ed25519"), (ssh.Transport, ssh.Host, ssh.Port, ssh.User, ssh.IdentityFile));
        Assert.Equal(["-F", "/etc/hasync/ssh_config"], ssh.SshOptions);
        Assert.Equal(TargetConfig.DefaultCommand, ssh.Command);
        Assert.Equal((TransportKind.Local, "/srv/mirror"), (config.Targets[1].Transport, config.Targets[1].Command[3]));
    }

    /// <summary>A pattern that is malformed, or can never match a path of the watched set, is refused with its line: a
    /// typo must not silently ship what the admin meant to keep out.</summary>
    [Theory]
    [InlineData("\"[bad\"", "hasync.yaml:2: exclude pattern '[bad': '[' at character 1 opens a set of characters that no ']' closes")]
    [InlineData("\"ssl/private\"", "hasync.yaml:2: exclude pattern 'ssl/private': a pattern with a '/' matches the whole path from the root: start it with '/'")]
    [InlineData("\"/var/lib/*.db\"", "hasync.yaml:2: exclude pattern '/var/lib/*.db': it can only match below /var/lib, which is not in the watched paths (/etc/bm, /etc/ssl)")]
    [InlineData("\"\"", "hasync.yaml:2: exclude pattern '': an empty pattern matches nothing")]
    public void AnExcludeThatIsMalformedOrCanNeverMatchIsRefusedWithItsLine(string pattern, string expected) =>
        Assert.StartsWith(expected, Assert.Throws<ConfigException>(() => ConfigLoader.Parse($"paths: [/etc/bm, /etc/ssl]\nexclude: [\"*.swp\", {pattern}]\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml")).Message);

    [Fact]
    public void ExcludesMatchSetsOfCharactersAndADirectoryWrittenWithATrailingSlash()
    {
        var config = ConfigLoader.Parse("paths: [/etc]\nexclude: [\"*.[ch]\", \"/etc/ssl/private/\", \"core.[!0-9]*\"]\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml");
        var filter = new HaSync.Scanning.PathFilter(config.Exclude);
        Assert.True(filter.Matches("/etc/x/main.c"));
        Assert.True(filter.Matches("/etc/x/main.h"));
        Assert.False(filter.Matches("/etc/x/main.o"));
        Assert.True(filter.Matches("/etc/ssl/private")); // the directory: the walk keeps out of it, and so all below
        Assert.False(filter.Matches("/etc/ssl/certs"));
        Assert.True(filter.Matches("/etc/core.dump"));
        Assert.False(filter.Matches("/etc/core.1234"));
    }

    [Fact]
    public void OptionalSshSettingsMayBeAbsent()
    {
        var config = ConfigLoader.Parse("paths: [/etc/bm]\ntargets:\n  - name: p\n    host: bm2\n", "c.yaml");
        Assert.Equal((null, null, null), (config.Targets[0].Port, config.Targets[0].User, config.Targets[0].IdentityFile));
        Assert.True(config.Delete);
        Assert.Equal("/", config.SourceRoot);
        Assert.Equal(HaSyncConfig.DefaultStateDirectory, config.StateDirectory);
        Assert.Equal((TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(1), (TimeSpan?)null), (config.Daemon.QuietWindow, config.Daemon.MaxDelay, config.Daemon.AuditInterval));
    }

    [Fact]
    public void RelativeSourceRootIsTakenFromTheConfigFilesFolder()
    {
        var config = ConfigLoader.Parse("source_root: demo/active\npaths: [/etc]\ntargets:\n  - name: p\n    transport: local\n", "/srv/hasync/hasync.yaml");
        Assert.Equal("/srv/hasync/demo/active", config.SourceRoot);
        Assert.Equal("/srv/hasync", config.Targets[0].WorkingDirectory);
    }

    [Theory]
    [InlineData("paths: [/etc/bm]\ntargets: []\ntragets: []\n", "hasync.yaml:3: unknown key 'tragets' at top level")]
    [InlineData("paths: [/etc/bm]\n", "hasync.yaml:1: missing required key 'targets' at top level")]
    [InlineData("targets:\n  - name: p\n    host: h\n", "hasync.yaml:1: missing required key 'paths' at top level")]
    [InlineData("paths: []\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:1: 'paths' is empty")]
    [InlineData("paths: [etc/bm]\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:1: 'paths': 'etc/bm' is not an absolute path")]
    [InlineData("paths: [/etc/../root]\ntargets:\n  - name: p\n    host: h\n", "contains '.' or '..'")]
    [InlineData("paths: /etc/bm\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:1: 'paths' must be a list")]
    [InlineData("paths: [/etc/bm]\ndelete: maybe\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:2: 'delete' must be true or false, not 'maybe'")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    host: h\n    port: 70000\n", "hasync.yaml:5: target 'p': port 70000 is outside 1..65535")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    host: h\n    port: twenty\n", "hasync.yaml:5: 'port' must be a whole number, not 'twenty'")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    transport: ftp\n", "hasync.yaml:4: target 'p': transport 'ftp' is not 'ssh' or 'local'")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    transport: ssh\n", "hasync.yaml:3: target 'p': 'host' is required with transport ssh")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    host: h\n    hots: h\n", "hasync.yaml:5: unknown key 'hots' at target")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - host: h\n", "hasync.yaml:3: missing required key 'name' at target")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: p\n    host: a\n  - name: p\n    host: b\n", "two targets are named 'p'")]
    [InlineData("paths: [/etc/bm\ntargets: x\n", "hasync.yaml: YAML syntax error (an unclosed bracket or quote?)")]
    [InlineData("paths: [/etc/bm]\ntargets:\n  - name: 'p\n", "YAML syntax error")]
    [InlineData("- just\n- a list\n", "the configuration must be a mapping")]
    [InlineData("paths: [/etc/bm]\npaths: [/etc]\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:2: YAML syntax error: Duplicate key")]
    [InlineData("paths: [/etc/bm]\ndaemon:\n  quiet_ms: 0\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: daemon: 'quiet_ms' 0 is outside 1..60000")]
    [InlineData("paths: [/etc/bm]\ndaemon:\n  quiet_ms: 500\n  max_delay_ms: 100\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:4: daemon: 'max_delay_ms' 100 is outside 500..600000")]
    [InlineData("paths: [/etc/bm]\ndaemon:\n  debounce: 5\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: unknown key 'debounce' at daemon")]
    [InlineData("paths: [/etc/bm]\ndaemon: fast\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:2: 'daemon' must be a mapping")]
    [InlineData("paths: [/etc/bm]\nrole: sometimes\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:2: role 'sometimes' is not 'always', or a mapping with 'vip: ADDRESS' or 'command: [...]'")]
    [InlineData("paths: [/etc/bm]\nrole:\n  vip: 10.0.0.300\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: role: vip '10.0.0.300' is not an IPv4 or IPv6 address")]
    [InlineData("paths: [/etc/bm]\nrole:\n  vip: 10.0.0.5\n  command: [true]\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: role: give exactly one of 'vip' and 'command'")]
    [InlineData("paths: [/etc/bm]\nrole:\n  check_ms: 500\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: role: give exactly one of 'vip' and 'command'")]
    [InlineData("paths: [/etc/bm]\nrole:\n  command: []\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: role: 'command' is empty")]
    [InlineData("paths: [/etc/bm]\nrole:\n  command: [true]\n  check_ms: 10\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:4: role: 'check_ms' 10 is outside 100..600000")]
    [InlineData("paths: [/etc/bm]\nrole:\n  vipp: 10.0.0.5\ntargets:\n  - name: p\n    host: h\n", "hasync.yaml:3: unknown key 'vipp' at role")]
    public void ErrorsNameTheFileLineAndKey(string yaml, string expected) => Assert.Contains(expected, Error(yaml));

    [Fact]
    public void RoleIsReadInEachForm()
    {
        const string targets = "targets:\n  - name: p\n    host: h\n";
        var none = ConfigLoader.Parse("paths: [/etc/bm]\n" + targets, "c.yaml").Role;
        var always = ConfigLoader.Parse("paths: [/etc/bm]\nrole: always\n" + targets, "c.yaml").Role;
        var vip = ConfigLoader.Parse("paths: [/etc/bm]\nrole:\n  vip: 2001:db8::10\n" + targets, "c.yaml").Role;
        var command = ConfigLoader.Parse("paths: [/etc/bm]\nrole:\n  command: [crm_resource, --locate]\n  check_ms: 500\n  timeout_ms: 3000\n" + targets, "/srv/c.yaml").Role;
        Assert.Equal((RoleKind.Unset, "none configured (counts as active)"), (none.Kind, none.Describe()));
        Assert.Equal(RoleKind.Always, always.Kind);
        Assert.Equal((RoleKind.Vip, "vip 2001:db8::10"), (vip.Kind, vip.Describe()));
        Assert.Equal((RoleKind.Command, "command crm_resource --locate", TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(3), "/srv"),
            (command.Kind, command.Describe(), command.Interval, command.CommandTimeout, command.WorkingDirectory));
    }

    [Fact]
    public void MissingFileIsAClearError()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/nonexistent/hasync.yaml"));
        Assert.Contains("/nonexistent/hasync.yaml: cannot read the configuration", e.Message);
    }
}
