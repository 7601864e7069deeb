-- fees: every fee that moved a balance (the ledger's fee legs), per exchange, account, fee
-- asset, market, fee_type and month (UTC), in its own asset and valued in EUR.
--   fee_type: 'trade' (a fill's fee; market is the fill's), 'deposit', 'withdrawal', 'other'
--             (a fee charged on another account event, or a rebate event; market null)
--   fee = paid - rebated, in the fee asset: paid sums the fees charged, rebated the rebates
--             credited (Bitvavo maker rebates are negative fees); fees counts the legs.
--   value: the sum of each fee valued at its own time: fee × the asset's price in `prices` at
--             the newest hour end at or before the fee (EUR is worth 1), each product exact and
--             rounded half away from zero to 18 decimals. A fee with no price then (before the
--             asset's first candle, or an asset nobody prices) is left out of value and counted
--             in unvalued; max_price_staleness is the oldest price used (fee time - observation).
-- Exact and fast arithmetic: exact_product and its kin (000_macros.sql).
with fee_legs as (
    select
        exchange,
        account,
        asset,
        market,
        case
            when kind = 'fee' and event_kind = 'trade' then 'trade'
            when kind = 'deposit_fee' then 'deposit'
            when kind = 'withdrawal_fee' then 'withdrawal'
            else 'other'
        end as fee_type,
        -amount as fee,
        executed_at
    from ledger
    where kind in ('fee', 'deposit_fee', 'withdrawal_fee')
),

priced as (
    select
        fee_legs.*,
        case when fee_legs.asset = 'EUR' then 1::decimal(38, 18) else prices.price end as price,
        case
            when fee_legs.asset = 'EUR' then interval 0 second
            else fee_legs.executed_at - prices.observed_at
        end as price_staleness
    from fee_legs
    asof left join prices
        on prices.asset = fee_legs.asset
        and prices.currency = 'EUR'
        and fee_legs.executed_at >= prices.priced_at
),

-- every amount as its whole part and the halves of its fraction (`decimal_parts`), once
parts as (
    select
        *,
        decimal_parts(abs(fee)) as fee_parts,
        decimal_parts(price) as price_parts
    from priced
    where asset <> 'EUR'
),

-- EUR is its own value: only other assets are multiplied
valued as (
    select
        * exclude (price, fee_parts, price_parts),
        units_to_decimal(sign(fee) * exact_round(exact_product(fee_parts, price_parts))) as value
    from parts
    union all
    select * exclude (price), fee as value from priced where asset = 'EUR'
),

final as (
    select
        exchange,
        account,
        asset,
        market,
        fee_type,
        date_trunc('month', executed_at at time zone 'UTC')::date as month,
        count(*) as fees,
        sum(fee)::decimal(38, 18) as fee,
        coalesce(sum(fee) filter (where fee > 0), 0)::decimal(38, 18) as paid,
        coalesce(-sum(fee) filter (where fee < 0), 0)::decimal(38, 18) as rebated,
        'EUR' as currency,
        sum(value)::decimal(38, 18) as value,
        count(*) filter (where value is null) as unvalued,
        max(price_staleness) as max_price_staleness
    from valued
    group by all
    order by exchange, account, month, asset, fee_type, market
)

select * from final
