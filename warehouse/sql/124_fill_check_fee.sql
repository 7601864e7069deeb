-- fill_check_fee: per fill of `fills`, its fee against the fee schedule. effective_rate = fee /
-- quote_amount (rounded half away from zero to 12 decimals), against the fee_schedules
-- snapshot of the fill's exchange, account and market (an account-wide one when the market has
-- none): the newest taken at or before the fill, else the oldest (schedule_in_force false).
-- schedule_rate is its maker or taker rate by the fill's taker flag; when the flag is unknown
-- (Bitstamp's ledger does not say), the higher of the two. allowed_fee = quote_amount ×
-- schedule_rate, exact. fee_check:
--   'ok'                   fee ≤ allowed_fee + a unit of the fee's last decimal as sent;
--   'above_schedule'       above that, with a snapshot in force at the fill's time;
--   'above_later_schedule' above that, judged by a later snapshot only. Not a failure:
--                          snapshots hold the current tier only, and a fill made while the
--                          trailing volume was lower paid an earlier tier's higher rate;
--   'unsettled' / 'no_fee' no fee yet (an unsettled Bitvavo fill) / none reported;
--   'other_asset'          the fee is not in the quote asset: not comparable;
--   'no_schedule'          no snapshot for the market or the account;
--   'not_applicable'       Bitvavo app trades pay the app's fee, not the order book's.
-- Only 'above_schedule' fails the check.
-- Exact and fast arithmetic: the macros of 000_macros.sql (exact_product, rounded_quotient…).
-- the raw text of the row `fills` keeps (an order-book row first, then the newest fetch): the
-- one staged row of its source
with kept_raw as (
    select fills.exchange, fills.account, fills.market, fills.fill_id, staged.raw
    from fills
    inner join staging.fills as staged using (exchange, account, market, fill_id, source)
),

schedules as (
    select exchange, account, market, maker, taker, taken_at
    from staging.fee_schedules
),

-- per traded market: its own snapshots, and the account-wide ones (market '') at other times
market_schedules as (
    select
        traded.exchange,
        traded.account,
        traded.market,
        schedules.maker,
        schedules.taker,
        schedules.taken_at
    from (select distinct exchange, account, market from fills) as traded
    inner join schedules
        on schedules.exchange = traded.exchange
        and schedules.account = traded.account
        and schedules.market in (traded.market, '')
    qualify row_number() over (
        partition by traded.exchange, traded.account, traded.market, schedules.taken_at
        order by schedules.market = ''
    ) = 1
),

-- the snapshot judging a fill from each moment on; before the first, the first (not in force)
schedule_periods as (
    select
        *,
        greatest(maker, taker) as higher,
        -- each rate as its whole part and the halves of its fraction (`decimal_parts`), once
        -- per snapshot rather than once per fill
        decimal_parts(abs(maker)) as maker_parts,
        decimal_parts(abs(taker)) as taker_parts,
        decimal_parts(abs(greatest(maker, taker))) as higher_parts
    from (
        select *, taken_at as judges_from, true as in_force
        from market_schedules
        union all
        select
            exchange,
            account,
            market,
            arg_min(maker, taken_at) as maker,
            arg_min(taker, taken_at) as taker,
            min(taken_at) as taken_at,
            '-infinity'::timestamptz as judges_from,
            false as in_force
        from market_schedules
        group by exchange, account, market
    )
),

joined as (
    select
        fills.*,
        kept.raw,
        schedule_periods.taken_at as schedule_taken_at,
        schedule_periods.in_force as schedule_in_force,
        case fills.taker
            when true then schedule_periods.taker
            when false then schedule_periods.maker
            else schedule_periods.higher
        end as schedule_rate,
        case fills.taker
            when true then schedule_periods.taker_parts
            when false then schedule_periods.maker_parts
            else schedule_periods.higher_parts
        end as rate_parts,
        list_contains(rules.fee_unchecked_sources, fills.source) as fee_unchecked
    from fills
    left join kept_raw as kept using (exchange, account, market, fill_id)
    asof left join schedule_periods
        on schedule_periods.exchange = fills.exchange
        and schedule_periods.account = fills.account
        and schedule_periods.market = fills.market
        and fills.executed_at >= schedule_periods.judges_from
    left join staging.exchange_rules as rules on rules.exchange = fills.exchange
),

-- the fee's decimals as sent: "fee" in both /v2/trades and user_transactions
decimals as (
    select
        * exclude (raw),
        decimals_as_sent(regexp_extract(raw, '"fee":"?-?(\d*\.?\d*)', 1), abs(fee))
            as fee_decimals
    from joined
),

-- the quote as its whole part and the halves of its fraction (`decimal_parts`), once
parts as (
    select
        *,
        decimal_parts(abs(quote_amount)) as quote_parts,
        sign(schedule_rate) as rate_sign,
        sign(fee) as fee_sign
    from decimals
),

products as (
    select
        *,
        exact_product(quote_parts, rate_parts) as allowed,
        decimal_units_of_text(abs(fee)) as fee_units,
        nullif(decimal_units_of_text(abs(quote_amount)), 0) as quote_units
    from parts
),

amounts as (
    select
        *,
        units_to_decimal(rate_sign * exact_round(allowed)) as allowed_fee,
        -- fee / quote to 12 decimals, half away from zero (one 128-bit division; null for a
        -- fee of 5·10^7 or more, whose units times 2·10^12 would not fit)
        case when abs(fee) < 50000000 then (
            fee_sign * rounded_quotient(fee_units * 1000000000000, quote_units)
        )::decimal(38, 0) * 0.000000000001::decimal(38, 18) end as effective_rate
    from products
),

judged as (
    select
        *,
        case
            when fee_unchecked then 'not_applicable'
            when fee is null and not settled then 'unsettled'
            when fee is null then 'no_fee'
            when fee_asset is distinct from quote_asset then 'other_asset'
            when schedule_rate is null then 'no_schedule'
            when fee <= allowed_fee + last_decimal_unit(fee_decimals) then 'ok'
            when schedule_in_force then 'above_schedule'
            else 'above_later_schedule'
        end as fee_check
    from amounts
),

final as (
    select
        exchange, account, market, fill_id,  -- the fill's key
        effective_rate,
        schedule_rate,
        schedule_taken_at,
        schedule_in_force,
        allowed_fee,
        fee_check
    from judged
)

select * from final
