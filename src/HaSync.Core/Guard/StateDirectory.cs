namespace HaSync.Guard;

/// <summary>
/// The node's state directory (journal, epochs, conflict copies, status) is root's own: 0711, so that no other user can
/// list it or read what is private in it (the journal and epochs are 0600, the conflict copies, which may be secret,
/// sit in 0700 directories), while a monitoring plugin running as another user (NRPE's nagios) can still read the
/// status file by its name.
/// </summary>
public static class StateDirectory
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Traversable = Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>Creates the state directory <paramref name="path"/> or, if it exists, takes away any access beyond 0711.</summary>
    public static void Ensure(string path) => Ensure(path, Traversable);

    /// <summary>Creates <paramref name="path"/>, a directory inside the state directory, 0700 (its parents too).</summary>
    public static void EnsurePrivate(string path) => Ensure(path, Private);

    private static void Ensure(string path, UnixFileMode mode)
    {
        var info = Directory.CreateDirectory(path, mode);
        if ((info.UnixFileMode & ~mode) != 0)
            File.SetUnixFileMode(path, info.UnixFileMode & mode);
    }
}
