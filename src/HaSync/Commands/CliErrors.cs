namespace HaSync.Cli.Commands;

/// <summary>Turns the errors an admin can cause (bad input, missing files, full disk) into one line on
/// stderr and exit code 1; anything else is a bug and keeps its stack trace.</summary>
internal static class CliErrors
{
    public static int Run(string verb, Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"hasync {verb}: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"hasync {verb}: cancelled");
            return 130;
        }
    }
}
