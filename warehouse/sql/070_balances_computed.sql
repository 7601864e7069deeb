-- balances_computed: the running balance per (exchange, account, asset) after every ledger row,
-- replayed in time order (Bitstamp rows of one moment by ledger id; then reference and leg).
-- position numbers the asset's rows from 1.
with ledger as (
    select * from ledger
),

final as (
    select
        exchange,
        account,
        asset,
        row_number() over replay as position,
        executed_at,
        kind,
        amount,
        sum(amount) over (replay rows between unbounded preceding and current row) as balance,
        reference,
        source,
        market
    from ledger
    window replay as (
        partition by exchange, account, asset
        order by executed_at, sequence, reference, source, leg, kind
    )
)

select * from final
