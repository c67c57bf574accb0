using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace HaSync.Configuration;

/// <summary>A configuration error: the message names the file, the line and the key.</summary>
public sealed class ConfigException(string message) : HaSyncException(message);

/// <summary>
/// Reads hasync.yaml through YamlDotNet's node model rather than a deserializer, so that every error can name
/// its line: unknown keys (a typo must not silently disable a setting), missing keys, wrong types, bad values.
/// </summary>
public static class ConfigLoader
{
    /// <summary>The configuration file used when none is given.</summary>
    public const string DefaultPath = "/etc/hasync/hasync.yaml";

    private static readonly string[] TopKeys = ["source_root", "paths", "exclude", "delete", "redact", "state_dir", "daemon", "role", "targets"];
    private static readonly string[] DaemonKeys = ["quiet_ms", "max_delay_ms", "audit_minutes", "self_check_ms", "log_file"];
    private static readonly string[] RoleKeys = ["vip", "command", "check_ms", "timeout_ms"];
    private static readonly string[] TargetKeys = ["name", "transport", "host", "port", "user", "identity_file", "ssh_options", "command", "heartbeat_ms"];

    /// <summary>Loads and validates a configuration file.</summary>
    public static HaSyncConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read the configuration: {e.Message}");
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates configuration text; <paramref name="source"/> names it in errors.</summary>
    public static HaSyncConfig Parse(string text, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{source}:{e.Start.Line}: YAML syntax error: {e.InnerException?.Message ?? e.Message}");
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's parser throws this, without a position, for some unterminated constructs.
            throw new ConfigException($"{source}: YAML syntax error (an unclosed bracket or quote?): {e.Message}");
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigException($"{source}: the configuration must be a mapping with at least 'paths' and 'targets'");

        var reader = new NodeReader(source);
        var keys = reader.Keys(root, TopKeys, "top level");
        string sourceRoot = keys.TryGetValue("source_root", out var sr) ? reader.DirectoryPath(sr, "source_root") : "/";
        var paths = reader.Required(keys, "paths", root, "top level", n => reader.List(n, "paths", item => reader.AbsolutePath(item, "paths")));
        if (paths.Count == 0)
            throw new ConfigException($"{source}:{Line(keys["paths"])}: 'paths' is empty: list at least one file or directory");
        var targetsNode = reader.Required(keys, "targets", root, "top level", n => n);
        var targets = reader.List(targetsNode, "targets", ReadTarget);
        if (targets.Count == 0)
            throw new ConfigException($"{source}:{Line(targetsNode)}: 'targets' is empty: list at least one passive node");
        var duplicate = targets.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ConfigException($"{source}:{Line(targetsNode)}: two targets are named '{duplicate.Key}'");

        string Pattern(YamlNode node, string key)
        {
            string pattern = reader.String(node, key);
            return Scanning.PathFilter.Problem(pattern, paths) is { } problem
                ? throw new ConfigException($"{source}:{Line(node)}: {key} pattern '{pattern}': {problem}")
                : pattern;
        }

        return new HaSyncConfig
        {
            Source = source,
            SourceRoot = sourceRoot,
            Paths = paths,
            Exclude = keys.TryGetValue("exclude", out var ex) ? reader.List(ex, "exclude", i => Pattern(i, "exclude")) : [],
            Delete = !keys.TryGetValue("delete", out var del) || reader.Bool(del, "delete"),
            Redact = keys.TryGetValue("redact", out var red) ? reader.List(red, "redact", i => Pattern(i, "redact")) : [],
            StateDirectory = keys.TryGetValue("state_dir", out var sd) ? reader.DirectoryPath(sd, "state_dir") : HaSyncConfig.DefaultStateDirectory,
            Daemon = keys.TryGetValue("daemon", out var dn) ? ReadDaemon(dn) : new DaemonConfig(),
            Role = keys.TryGetValue("role", out var rn) ? ReadRole(rn) : new RoleConfig(),
            Targets = targets,
        };

        DaemonConfig ReadDaemon(YamlNode node)
        {
            if (node is not YamlMappingNode map)
                throw new ConfigException($"{source}:{Line(node)}: 'daemon' must be a mapping (quiet_ms, max_delay_ms, audit_minutes, self_check_ms, log_file)");
            var d = reader.Keys(map, DaemonKeys, "daemon");
            var defaults = new DaemonConfig();
            int Ranged(string key, int fallback, int min, int max)
            {
                if (!d.TryGetValue(key, out var n))
                    return fallback;
                int value = reader.Int(n, key);
                return value >= min && value <= max ? value : throw new ConfigException($"{source}:{Line(n)}: daemon: '{key}' {value} is outside {min}..{max}");
            }
            int quiet = Ranged("quiet_ms", (int)defaults.QuietWindow.TotalMilliseconds, 1, 60_000);
            int maxDelay = Ranged("max_delay_ms", (int)defaults.MaxDelay.TotalMilliseconds, quiet, 600_000);
            int audit = Ranged("audit_minutes", 0, 0, 7 * 24 * 60);
            int selfCheck = Ranged("self_check_ms", (int)defaults.SelfCheckAfter!.Value.TotalMilliseconds, 0, 3_600_000);
            return new DaemonConfig
            {
                QuietWindow = TimeSpan.FromMilliseconds(quiet),
                MaxDelay = TimeSpan.FromMilliseconds(maxDelay),
                AuditInterval = audit > 0 ? TimeSpan.FromMinutes(audit) : null,
                SelfCheckAfter = selfCheck > 0 ? TimeSpan.FromMilliseconds(selfCheck) : null,
                LogFile = d.TryGetValue("log_file", out var lf) ? reader.DirectoryPath(lf, "log_file") : null,
            };
        }

        RoleConfig ReadRole(YamlNode node)
        {
            const string forms = "'always', or a mapping with 'vip: ADDRESS' or 'command: [...]'";
            if (node is YamlScalarNode scalar)
                return scalar.Value == "always"
                    ? new RoleConfig { Kind = RoleKind.Always }
                    : throw new ConfigException($"{source}:{Line(node)}: role '{scalar.Value}' is not {forms}");
            if (node is not YamlMappingNode map)
                throw new ConfigException($"{source}:{Line(node)}: 'role' must be {forms}");
            var r = reader.Keys(map, RoleKeys, "role");
            if (r.ContainsKey("vip") == r.ContainsKey("command"))
                throw new ConfigException($"{source}:{Line(map)}: role: give exactly one of 'vip' and 'command'");
            int Milliseconds(string key, int fallback, int min, int max)
            {
                if (!r.TryGetValue(key, out var n))
                    return fallback;
                int value = reader.Int(n, key);
                return value >= min && value <= max ? value : throw new ConfigException($"{source}:{Line(n)}: role: '{key}' {value} is outside {min}..{max}");
            }
            var defaults = new RoleConfig();
            var role = new RoleConfig
            {
                Interval = TimeSpan.FromMilliseconds(Milliseconds("check_ms", (int)defaults.Interval.TotalMilliseconds, 100, 600_000)),
                CommandTimeout = TimeSpan.FromMilliseconds(Milliseconds("timeout_ms", (int)defaults.CommandTimeout.TotalMilliseconds, 100, 600_000)),
                WorkingDirectory = BaseDirectory(source),
            };
            if (r.TryGetValue("vip", out var vip))
            {
                string text = reader.String(vip, "vip");
                return System.Net.IPAddress.TryParse(text, out var address)
                    ? role with { Kind = RoleKind.Vip, Vip = address }
                    : throw new ConfigException($"{source}:{Line(vip)}: role: vip '{text}' is not an IPv4 or IPv6 address");
            }
            var command = reader.List(r["command"], "command", i => reader.String(i, "command"));
            return command.Count > 0
                ? role with { Kind = RoleKind.Command, Command = command }
                : throw new ConfigException($"{source}:{Line(r["command"])}: role: 'command' is empty");
        }

        TargetConfig ReadTarget(YamlNode node)
        {
            if (node is not YamlMappingNode map)
                throw new ConfigException($"{source}:{Line(node)}: each target must be a mapping (name, transport, host, ...)");
            var t = reader.Keys(map, TargetKeys, "target");
            string name = reader.Required(t, "name", map, "target", n => reader.String(n, "name"));
            var transport = t.TryGetValue("transport", out var tr)
                ? reader.String(tr, "transport") switch
                {
                    "ssh" => TransportKind.Ssh,
                    "local" => TransportKind.Local,
                    string other => throw new ConfigException($"{source}:{Line(tr)}: target '{name}': transport '{other}' is not 'ssh' or 'local'"),
                }
                : TransportKind.Ssh;
            string? host = t.TryGetValue("host", out var h) ? reader.String(h, "host") : null;
            if (transport == TransportKind.Ssh && string.IsNullOrWhiteSpace(host))
                throw new ConfigException($"{source}:{Line(map)}: target '{name}': 'host' is required with transport ssh");
            int? port = null;
            if (t.TryGetValue("port", out var p))
            {
                port = reader.Int(p, "port");
                if (port is < 1 or > 65535)
                    throw new ConfigException($"{source}:{Line(p)}: target '{name}': port {port} is outside 1..65535");
            }
            var heartbeat = Protocol.Wire.DefaultHeartbeat;
            if (t.TryGetValue("heartbeat_ms", out var hb))
            {
                heartbeat = TimeSpan.FromMilliseconds(reader.Int(hb, "heartbeat_ms"));
                if (heartbeat < Protocol.Wire.MinHeartbeat || heartbeat > Protocol.Wire.MaxHeartbeat)
                    throw new ConfigException($"{source}:{Line(hb)}: target '{name}': heartbeat_ms {heartbeat.TotalMilliseconds} is outside {Protocol.Wire.MinHeartbeat.TotalMilliseconds}..{Protocol.Wire.MaxHeartbeat.TotalMilliseconds}");
            }
            var command = t.TryGetValue("command", out var c) ? reader.List(c, "command", i => reader.String(i, "command")) : TargetConfig.DefaultCommand;
            if (command.Count == 0)
                throw new ConfigException($"{source}:{Line(c!)}: target '{name}': 'command' is empty");
            return new TargetConfig
            {
                Name = name,
                WorkingDirectory = BaseDirectory(source),
                Transport = transport,
                Host = host,
                Port = port,
                User = t.TryGetValue("user", out var u) ? reader.String(u, "user") : null,
                IdentityFile = t.TryGetValue("identity_file", out var id) ? reader.String(id, "identity_file") : null,
                SshOptions = t.TryGetValue("ssh_options", out var o) ? reader.List(o, "ssh_options", i => reader.String(i, "ssh_options")) : [],
                Command = command,
                Heartbeat = heartbeat,
            };
        }
    }

    private static long Line(YamlNode node) => node.Start.Line;

    /// <summary>The folder relative paths in a configuration are taken from: the file's own.</summary>
    public static string BaseDirectory(string configSource) =>
        Path.GetDirectoryName(Path.GetFullPath(configSource)) ?? "/";

    /// <summary>Typed reads of YAML nodes with errors that say file, line and key.</summary>
    private sealed class NodeReader(string source)
    {
        public Dictionary<string, YamlNode> Keys(YamlMappingNode map, string[] known, string where)
        {
            var result = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var (keyNode, value) in map.Children)
            {
                string key = (keyNode as YamlScalarNode)?.Value ?? "";
                if (!known.Contains(key))
                    throw new ConfigException($"{source}:{Line(keyNode)}: unknown key '{key}' at {where} (known: {string.Join(", ", known)})");
                result[key] = value; // YamlDotNet has already refused a key that appears twice
            }
            return result;
        }

        public T Required<T>(Dictionary<string, YamlNode> keys, string key, YamlNode parent, string where, Func<YamlNode, T> read) =>
            keys.TryGetValue(key, out var node) ? read(node) : throw new ConfigException($"{source}:{Line(parent)}: missing required key '{key}' at {where}");

        public string String(YamlNode node, string key) => node is YamlScalarNode { Value: { } value }
            ? value
            : throw new ConfigException($"{source}:{Line(node)}: '{key}' must be a single value");

        public bool Bool(YamlNode node, string key) => String(node, key).ToLowerInvariant() switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            string other => throw new ConfigException($"{source}:{Line(node)}: '{key}' must be true or false, not '{other}'"),
        };

        public int Int(YamlNode node, string key) => int.TryParse(String(node, key), out int value)
            ? value
            : throw new ConfigException($"{source}:{Line(node)}: '{key}' must be a whole number, not '{String(node, key)}'");

        public List<T> List<T>(YamlNode node, string key, Func<YamlNode, T> read) => node is YamlSequenceNode sequence
            ? sequence.Children.Select(read).ToList()
            : throw new ConfigException($"{source}:{Line(node)}: '{key}' must be a list");

        /// <summary>A directory; a relative one is taken from the configuration file's own folder.</summary>
        public string DirectoryPath(YamlNode node, string key)
        {
            string value = String(node, key);
            return Path.GetFullPath(value, BaseDirectory(source));
        }

        public string AbsolutePath(YamlNode node, string key)
        {
            string value = String(node, key);
            if (!value.StartsWith('/'))
                throw new ConfigException($"{source}:{Line(node)}: '{key}': '{value}' is not an absolute path");
            return Scanning.TreeWalker.Normalise(value)
                ?? throw new ConfigException($"{source}:{Line(node)}: '{key}': '{value}' contains '.' or '..'");
        }
    }
}
