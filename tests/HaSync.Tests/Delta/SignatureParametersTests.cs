using HaSync.Delta;

namespace HaSync.Tests.Delta;

/// <summary>rdiff 2.3's choices, as read off rdiff itself (`rdiff signature` headers for these sizes).</summary>
public sealed class SignatureParametersTests
{
    [Theory]
    [InlineData(0L, 256, 32)]
    [InlineData(65536L, 256, 32)]
    [InlineData(65537L, 256, 32)]
    [InlineData(1_000_000L, 896, 32)]
    [InlineData(200_000_000L, 14080, 32)]
    [InlineData(null, 2048, 32)]
    public void DefaultsFollowRdiff(long? size, int block, int strong)
    {
        var p = SignatureParameters.Choose(size);
        Assert.Equal((SignatureMagic.RabinKarpBlake2, block, strong), (p.Magic, p.BlockLength, p.StrongLength));
    }

    [Theory]
    [InlineData(0L, 5)]
    [InlineData(1000L, 6)]
    [InlineData(1_000_000L, 7)]
    [InlineData(200_000_000L, 7)]
    [InlineData(null, 12)]
    public void MinimumStrongLengthFollowsRdiff(long? size, int strong) =>
        Assert.Equal(strong, SignatureParameters.Choose(size, strongLength: -1).StrongLength);

    [Theory]
    [InlineData(SignatureMagic.RabinKarpBlake2, 33)]
    [InlineData(SignatureMagic.RabinKarpMd4, 17)]
    [InlineData(SignatureMagic.Md4, -2)]
    public void StrongLengthBeyondTheHashIsRefused(SignatureMagic magic, int strong)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SignatureParameters.Choose(1000, magic, 0, strong));
        Assert.Contains("strong sum length", e.Message);
    }

    [Fact]
    public void AbsurdBlockLengthIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => SignatureParameters.Choose(1000, blockLength: SignatureFormat.MaxBlockLength + 1));
}
