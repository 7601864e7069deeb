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
-- Exact and fast arithmetic (as in fill_checks): a DECIMAL(38,18) product is DECIMAL(38,36) and
-- overflows from 100, and rescaling or dividing 128-bit integers is slow. So both factors are
-- read from their 18-decimal text as a whole part and the fraction in two 9-digit halves:
-- every partial product fits its integer type, and only 64-bit integers are ever divided.
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

-- EUR is its own value: only other assets are multiplied
digits as (
    select
        *,
        case when asset <> 'EUR' then abs(fee)::varchar end as fee_digits,
        case when asset <> 'EUR' then price::varchar end as price_digits
    from priced
),

parts as (
    select
        * exclude (fee_digits, price_digits),
        split_part(fee_digits, '.', 1)::hugeint as fee_whole,
        left(split_part(fee_digits, '.', 2), 9)::bigint as fee_high,
        right(split_part(fee_digits, '.', 2), 9)::bigint as fee_low,
        split_part(price_digits, '.', 1)::hugeint as price_whole,
        left(split_part(price_digits, '.', 2), 9)::bigint as price_high,
        right(split_part(price_digits, '.', 2), 9)::bigint as price_low
    from digits
),

-- fee × price in units of 1e-18: whole·whole·1e18 + whole·fraction + fraction·whole
-- + fraction·fraction / 1e18, the last from the halves (the middle terms carried in 64 bits);
-- rest (in 1e-18 of a unit) decides the rounding
halves as (
    select
        *,
        fee_high * price_low + fee_low * price_high + (fee_low * price_low) // 1000000000
            as middle,
        (fee_low * price_low) % 1000000000 as tail
    from parts
),

products as (
    select
        *,
        fee_whole * price_whole * 1000000000000000000
        + fee_whole * (price_high * 1000000000 + price_low)
        + (fee_high * 1000000000 + fee_low) * price_whole
        + fee_high * price_high
        + middle // 1000000000 as floor_units,
        (middle % 1000000000) * 1000000000 + tail as rest
    from halves
),

valued as (
    select
        exchange,
        account,
        asset,
        market,
        fee_type,
        fee,
        executed_at,
        price_staleness,
        case
            when asset = 'EUR' then fee
            else (
                sign(fee) * (floor_units + case when rest >= 500000000000000000 then 1 else 0 end)
            )::decimal(38, 0) * 0.000000000000000001::decimal(38, 18)
        end as value
    from products
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
