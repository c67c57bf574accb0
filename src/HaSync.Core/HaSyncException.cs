namespace HaSync;

/// <summary>Root of the errors HaSync reports to the admin; the message says what and where.</summary>
public class HaSyncException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HaSyncException(string message, Exception? inner = null) : base(message, inner) { }
}
