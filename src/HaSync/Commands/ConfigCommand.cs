using System.CommandLine;
using HaSync.Configuration;

namespace HaSync.Cli.Commands;

/// <summary><c>hasync config check</c>: is the configuration one the daemon can run, before anything is restarted?
/// Exit 0 valid, 1 valid with warnings (each printed), 2 invalid (the error names the file and the line).</summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var config = ResyncCommand.ConfigOption();
        var check = new Command("check", "Check the configuration file: exit 0 valid, 1 valid with warnings, 2 invalid") { config };
        check.SetAction(r =>
        {
            HaSyncConfig loaded;
            try
            {
                loaded = ConfigLoader.Load(r.GetValue(config)!);
            }
            catch (HaSyncException e)
            {
                Console.Error.WriteLine($"hasync config check: {e.Message}");
                return 2;
            }
            if (ConfigCheck.LogFileProblem(loaded) is { } fatal)
            {
                Console.Error.WriteLine($"hasync config check: {fatal}");
                return 2;
            }
            var warnings = ConfigCheck.Warnings(loaded);
            foreach (string warning in warnings)
                Console.Error.WriteLine($"hasync config check: warning: {warning}");
            Console.WriteLine($"{loaded.Source}: valid: {loaded.Paths.Count} path(s), {loaded.Targets.Count} target(s) " +
                              $"({string.Join(", ", loaded.Targets.Select(t => t.Name))}){(warnings.Count > 0 ? $", {warnings.Count} warning(s)" : "")}");
            return warnings.Count > 0 ? 1 : 0;
        });
        return new Command("config", "Work with the configuration file") { check };
    }
}
