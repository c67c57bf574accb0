namespace HaSync.Delta;

/// <summary>A signature or delta that is not valid librsync input: bad magic, truncation, a reserved
/// opcode, a copy beyond the basis, an absurd length. The message names the offset and what was being read.</summary>
public sealed class DeltaFormatException : HaSyncException
{
    /// <summary>Creates the exception.</summary>
    public DeltaFormatException(string message) : base(message) { }
}
