-- reconcile_balances: per exchange, account and asset, the balance the exchange reported in
-- the account's latest snapshot against the ledger replayed up to the snapshot's time.
-- difference = reported - computed, exactly; status 'ok' when it is 0, else 'mismatch'.
-- An asset the ledger moved but the snapshot does not list counts as reported 0.
--
-- Where a mismatch came from: the ledger can be right up to some row and lack (or misstate)
-- one movement of `difference` after it. A balance is never negative, so the movement must
-- come before the first row at which the computed balance is negative, and after every row at
-- which the balance corrected by the difference would be negative; an earlier snapshot that
-- agreed puts it after that snapshot, one already off by the same difference before it.
--   diverged_after (_at, _position): the LAST ledger row of the asset at which the computed
--       balance can still have been right: from the next row on, computed and reported can no
--       longer agree. Null when the very first row is already wrong.
--   diverged_not_before (_at, _position): the movement came after this row at the earliest
--       (null: it can be as early as the first row).
--   divergence_evidence: what pins diverged_after ('negative balance', 'earlier snapshot',
--       or 'none': then it is simply the last row before the snapshot).
with replay as materialized (
    -- read once: each mention of the view would replay the whole ledger again
    select * from balances_computed
),

snapshots as (
    select exchange, account, asset, total as reported, taken_at
    from staging.balance_snapshots
),

latest as (
    select exchange, account, max(taken_at) as taken_at
    from snapshots
    group by exchange, account
),

-- the running balance after the last row of each moment (one row per asset and time)
moments as (
    select
        exchange,
        account,
        asset,
        executed_at,
        max(position) as position,
        arg_max(balance, position) as balance
    from replay
    group by exchange, account, asset, executed_at
),

ledger_assets as (
    select distinct exchange, account, asset
    from replay
),

unlisted as (
    select
        latest.exchange,
        latest.account,
        ledger_assets.asset,
        latest.taken_at,
        0::decimal(38, 18) as reported
    from latest
    inner join ledger_assets
        on ledger_assets.exchange = latest.exchange
        and ledger_assets.account = latest.account
    where not exists (
        select 1 from snapshots
        where snapshots.exchange = latest.exchange
            and snapshots.account = latest.account
            and snapshots.taken_at = latest.taken_at
            and snapshots.asset = ledger_assets.asset
    )
),

-- every reported balance (and the 0 of an unlisted asset) against the ledger replayed up to
-- its time
snapshot_balances as (
    select
        reported.exchange,
        reported.account,
        reported.asset,
        reported.taken_at,
        reported.reported,
        coalesce(moments.balance, 0) as computed,
        coalesce(moments.position, 0) as position
    from (select * from snapshots union all by name select * from unlisted) as reported
    asof left join moments
        on moments.exchange = reported.exchange
        and moments.account = reported.account
        and moments.asset = reported.asset
        and reported.taken_at >= moments.executed_at
),

-- the latest snapshot's
compared as (
    select
        exchange,
        account,
        asset,
        taken_at,
        reported,
        computed,
        reported - computed as difference,
        position as last_position
    from snapshot_balances
    inner join latest using (exchange, account, taken_at)
),

-- what the earlier snapshots say: the last position at which one agreed, and the first at
-- which one was already off by the same difference
earlier as (
    select
        compared.exchange,
        compared.account,
        compared.asset,
        max(snapshot_balances.position) filter (
            where snapshot_balances.reported = snapshot_balances.computed
        ) as agreed_position,
        min(snapshot_balances.position) filter (
            where snapshot_balances.reported - snapshot_balances.computed = compared.difference
        ) as off_position
    from compared
    inner join snapshot_balances
        on snapshot_balances.exchange = compared.exchange
        and snapshot_balances.account = compared.account
        and snapshot_balances.asset = compared.asset
        and snapshot_balances.taken_at < compared.taken_at
    where compared.difference <> 0
    group by compared.exchange, compared.account, compared.asset
),

replayed as (
    select
        compared.exchange,
        compared.account,
        compared.asset,
        -- before the first row the balance is 0 (position 0)
        max(
            case when replay.balance + compared.difference < 0
                then replay.position end
        ) as last_corrected_negative,
        min(case when replay.balance < 0 then replay.position end)
            as first_negative
    from compared
    inner join replay
        on replay.exchange = compared.exchange
        and replay.account = compared.account
        and replay.asset = compared.asset
        and replay.position <= compared.last_position
    where compared.difference <> 0
    group by compared.exchange, compared.account, compared.asset
),

candidate_bounds as (
    select
        compared.exchange,
        compared.account,
        compared.asset,
        compared.last_position,
        greatest(
            coalesce(replayed.last_corrected_negative, case when compared.difference < 0 then 0 end)
            + 1,
            earlier.agreed_position,
            0
        ) as lower_position,
        replayed.first_negative - 1 as before_negative,
        earlier.off_position as before_snapshot
    from compared
    left join replayed using (exchange, account, asset)
    left join earlier using (exchange, account, asset)
    where compared.difference <> 0
),

bounds as (
    select
        exchange,
        account,
        asset,
        lower_position,
        least(before_negative, before_snapshot, last_position) as upper_position,
        case least(before_negative, before_snapshot, last_position)
            when last_position then 'none'
            when before_negative then 'negative balance'
            else 'earlier snapshot'
        end as evidence
    from candidate_bounds
),

final as (
    select
        compared.exchange,
        compared.account,
        compared.asset,
        compared.reported,
        compared.computed,
        compared.difference,
        case when compared.difference = 0 then 'ok' else 'mismatch' end as status,
        upper_row.reference as diverged_after,
        upper_row.executed_at as diverged_after_at,
        bounds.upper_position as diverged_after_position,
        lower_row.reference as diverged_not_before,
        lower_row.executed_at as diverged_not_before_at,
        bounds.lower_position as diverged_not_before_position,
        bounds.evidence as divergence_evidence,
        compared.taken_at,
        compared.last_position as ledger_rows
    from compared
    left join bounds using (exchange, account, asset)
    left join replay as upper_row
        on upper_row.exchange = compared.exchange
        and upper_row.account = compared.account
        and upper_row.asset = compared.asset
        and upper_row.position = bounds.upper_position
    left join replay as lower_row
        on lower_row.exchange = compared.exchange
        and lower_row.account = compared.account
        and lower_row.asset = compared.asset
        and lower_row.position = bounds.lower_position
    order by compared.exchange, compared.account, compared.asset
)

select * from final
