using HaSync.Configuration;
using HaSync.Sync;
using HaSync.Transport;

namespace HaSync.Cli.Commands;

/// <summary>Shared by the verbs that talk to passive nodes: choose targets, start each agent, open a session.</summary>
internal static class Targets
{
    public static IReadOnlyList<TargetConfig> Select(HaSyncConfig config, string? name)
    {
        if (name is null)
            return config.Targets;
        return config.Targets.Where(t => t.Name == name).ToList() is { Count: > 0 } chosen
            ? chosen
            : throw new ConfigException($"{config.Source}: no target named '{name}' (targets: {string.Join(", ", config.Targets.Select(t => t.Name))})");
    }

    /// <summary>Starts the target's agent, opens a session, runs <paramref name="work"/>, closes both.</summary>
    public static async Task<T> WithSessionAsync<T>(TargetConfig target, Func<AgentSession, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var agent = AgentProcess.Start(target, onStderr: line => Console.Error.WriteLine($"[{target.Name}] {line}"));
        using var session = AgentSession.Open(agent.Input, agent.Output, target.Name, agent.Describe, target.Heartbeat);
        return await work(session).WaitAsync(cancellationToken);
    }
}
