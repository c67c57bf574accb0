using HaSync.Configuration;
using HaSync.Guard;
using Microsoft.Extensions.Logging;

namespace HaSync.Daemon;

/// <summary>A period of being the active node: its epoch, and a token cancelled when it ends.</summary>
public sealed class ActiveTerm(Epoch epoch, CancellationToken ended)
{
    /// <summary>The epoch taken when the term began.</summary>
    public Epoch Epoch { get; } = epoch;
    /// <summary>Cancelled when the node stops being active.</summary>
    public CancellationToken Ended { get; } = ended;
}

/// <summary>The node's role as <c>hasync status</c> and <c>hasync check</c> show it.</summary>
public sealed record RoleStatus
{
    /// <summary>How the role is decided (vip, command, always, none configured).</summary>
    public required string Check { get; init; }
    /// <summary>active, passive, unknown (the check could not run) or fenced (another node's term superseded this one's):
    /// only an active node pushes.</summary>
    public required string State { get; init; }
    /// <summary>The last verdict in words.</summary>
    public string Detail { get; init; } = "";
    /// <summary>The epoch of the current term while active.</summary>
    public long? Epoch { get; init; }
    /// <summary>Since when <see cref="State"/> holds.</summary>
    public DateTimeOffset Since { get; init; }
    /// <summary>False when no role check is configured (the node counts as active, and check warns).</summary>
    public bool Configured { get; init; } = true;
}

/// <summary>
/// Decides, every <see cref="RoleConfig.Interval"/> and before each batch, whether this node is the active one.
/// Becoming active takes a new epoch and starts a term; losing the role ends it, and the pushers close their
/// sessions and wait. A check that cannot run counts as not active.
/// </summary>
public sealed class RoleMonitor : IDisposable
{
    /// <summary>A verdict younger than this is trusted before a batch (a burst of batches shares one check).</summary>
    private static readonly TimeSpan Fresh = TimeSpan.FromMilliseconds(250);
    private readonly RoleConfig _role;
    private readonly EpochStore _epochs;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _checking = new(1, 1);
    private readonly Lock _lock = new();
    // Guarded by _lock:
    private CancellationTokenSource? _term;
    private ActiveTerm? _current;
    private TaskCompletionSource<ActiveTerm> _activated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RoleStatus _status;
    private DateTimeOffset _checkedAt = DateTimeOffset.MinValue;

    /// <summary>A monitor for <paramref name="config"/>'s role; nothing is checked until <see cref="RunAsync"/> or a wait.</summary>
    public RoleMonitor(HaSyncConfig config, EpochStore epochs, ILogger log, TimeProvider clock)
    {
        _role = config.Role;
        _epochs = epochs;
        _log = log;
        _clock = clock;
        _status = new RoleStatus { Check = _role.Describe(), State = "unknown", Detail = "not checked yet", Since = clock.GetUtcNow(), Configured = _role.Kind != RoleKind.Unset };
    }

    /// <summary>This node's epochs.</summary>
    public EpochStore Epochs => _epochs;

    /// <summary>The role now.</summary>
    public RoleStatus Status
    {
        get
        {
            lock (_lock)
                return _status;
        }
    }

    private DateTimeOffset CheckedAt
    {
        get
        {
            lock (_lock)
                return _checkedAt;
        }
    }

    /// <summary>Checks every interval until <paramref name="stop"/>.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await CheckNowAsync(stop).ConfigureAwait(false);
                await Task.Delay(_role.Interval, _clock, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        // The term is not ended here: a stopping daemon's pushers still send what was queued last (their drain).
    }

    /// <summary>Waits until the node is active; returns its term.</summary>
    public async Task<ActiveTerm> WaitActiveAsync(CancellationToken stop)
    {
        Task<ActiveTerm> activated;
        lock (_lock)
            activated = _activated.Task;
        if (!activated.IsCompleted && CheckedAt == DateTimeOffset.MinValue)
            await CheckNowAsync(stop).ConfigureAwait(false); // the first waiter need not wait for the periodic check
        lock (_lock)
            activated = _activated.Task;
        return await activated.WaitAsync(stop).ConfigureAwait(false);
    }

    /// <summary>Before a batch: true while <paramref name="term"/> still holds, checking again if the last verdict is not fresh.</summary>
    public async Task<bool> ConfirmAsync(ActiveTerm term, CancellationToken cancellationToken)
    {
        if (_clock.GetUtcNow() - CheckedAt > Fresh)
            await CheckNowAsync(cancellationToken).ConfigureAwait(false);
        return !term.Ended.IsCancellationRequested;
    }

    /// <summary>Checks now and acts on a change of role.</summary>
    public async Task CheckNowAsync(CancellationToken cancellationToken)
    {
        await _checking.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var verdict = await RoleCheck.EvaluateAsync(_role, cancellationToken).ConfigureAwait(false);
            Apply(verdict);
        }
        finally
        {
            _checking.Release();
        }
    }

    private void Apply(RoleVerdict verdict)
    {
        var now = _clock.GetUtcNow();
        lock (_lock)
        {
            string state = verdict.Active ? "active" : verdict.Failed ? "unknown" : "passive";
            if (verdict.Active && _current is null)
            {
                Epoch epoch;
                try
                {
                    epoch = _epochs.TakeNew();
                }
                catch (HaSyncException e)
                {
                    // Without a new epoch the passive's agent could not tell us from a former active: do not push.
                    string blocked = e is FencedException ? "fenced" : "unknown";
                    string detail = $"{verdict.Detail}, but {e.Message}";
                    bool news = _status.State != blocked || _status.Detail != detail;
                    _status = _status with { State = blocked, Detail = detail, Since = _status.State == blocked ? _status.Since : now };
                    _checkedAt = now;
                    if (news && e is FencedException)
                        _log.NotTakingTerm(detail);
                    else if (news)
                        _log.RoleCheckFailed(detail);
                    return;
                }
                _term = new CancellationTokenSource();
                _current = new ActiveTerm(epoch, _term.Token);
                _activated.TrySetResult(_current);
                _log.BecameActive(verdict.Detail, epoch.Number);
                if (_role.Kind == RoleKind.Unset)
                    _log.NoRoleCheck();
            }
            else if (!verdict.Active && _current is not null)
            {
                _term!.Cancel(); // not disposed: the pushers still read its token
                _term = null;
                _current = null;
                _activated = new TaskCompletionSource<ActiveTerm>(TaskCreationOptions.RunContinuationsAsynchronously);
                _log.NoLongerActive(verdict.Detail);
            }
            else if (!verdict.Active && (_status.State != state || _status.Detail != verdict.Detail))
            {
                if (verdict.Failed)
                    _log.RoleCheckFailed(verdict.Detail);
                else
                    _log.StandingBy(verdict.Detail);
            }
            _checkedAt = now;
            _status = _status with
            {
                State = state,
                Detail = verdict.Detail,
                Epoch = _current?.Epoch.Number,
                Since = _status.State == state ? _status.Since : now,
            };
        }
    }

    /// <summary>Ends the term (if any) and releases the check's semaphore.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _term?.Cancel();
            _term?.Dispose();
            _term = null;
        }
        _checking.Dispose();
    }
}
