using System.Diagnostics;
using System.Net.NetworkInformation;
using HaSync.Configuration;

namespace HaSync.Guard;

/// <summary>Whether this node is the active one now, and why; <see cref="Failed"/> when the check itself could not run
/// (then the node does not count as active: pushing on a guess is how split-brain destroys data).</summary>
public sealed record RoleVerdict(bool Active, string Detail, bool Failed = false);

/// <summary>Evaluates a <see cref="RoleConfig"/> once.</summary>
public static class RoleCheck
{
    /// <summary>Active or not, with the reason in words.</summary>
    public static async Task<RoleVerdict> EvaluateAsync(RoleConfig role, CancellationToken cancellationToken = default) => role.Kind switch
    {
        RoleKind.Unset => new RoleVerdict(true, "no role check is configured: this node counts as active"),
        RoleKind.Always => new RoleVerdict(true, "role: always"),
        RoleKind.Vip => Vip(role.Vip!),
        _ => await CommandAsync(role, cancellationToken).ConfigureAwait(false),
    };

    private static RoleVerdict Vip(System.Net.IPAddress vip)
    {
        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
                if (nic.GetIPProperties().UnicastAddresses.Any(a => a.Address.Equals(vip)))
                    return new RoleVerdict(true, $"vip {vip} is on {nic.Name}");
            return new RoleVerdict(false, $"vip {vip} is not on any local interface");
        }
        catch (NetworkInformationException e)
        {
            return new RoleVerdict(false, $"cannot list the local addresses to look for vip {vip}: {e.Message}", Failed: true);
        }
    }

    private static async Task<RoleVerdict> CommandAsync(RoleConfig role, CancellationToken cancellationToken)
    {
        string shown = string.Join(' ', role.Command);
        var start = new ProcessStartInfo(role.Command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = role.WorkingDirectory ?? "",
        };
        foreach (string argument in role.Command.Skip(1))
            start.ArgumentList.Add(argument);
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new RoleVerdict(false, $"role command '{shown}' cannot start: {e.Message}", Failed: true);
        }
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(role.CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            cancellationToken.ThrowIfCancellationRequested();
            return new RoleVerdict(false, $"role command '{shown}' did not answer within {role.CommandTimeout.TotalSeconds:0.#} s", Failed: true);
        }
        string said = FirstLine(await output.ConfigureAwait(false)) ?? FirstLine(await errors.ConfigureAwait(false)) ?? "";
        string words = said.Length > 0 ? $": {said}" : "";
        return process.ExitCode == 0
            ? new RoleVerdict(true, $"role command '{shown}' exited 0{words}")
            : new RoleVerdict(false, $"role command '{shown}' exited {process.ExitCode}{words}");
    }

    private static string? FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() is { } line
            ? line.Length > 200 ? line[..200] : line
            : null;
}
