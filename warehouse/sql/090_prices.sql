-- prices: an hourly valuation series per asset in the reporting currency (EUR), from landed
-- 1h candles. priced_at is the end of each hour from the asset's first observation to the end
-- of the landed candles; price is the close of the freshest observation at or before it (an
-- hour with trades; Bitstamp's zero-volume filler candles are not observations):
--   1. ASSET-EUR on Bitvavo, 2. ASSET-EUR on Bitstamp, 3. ASSET-USD on Bitstamp divided by
--   Bitstamp EUR-USD (USD itself: 1 / EUR-USD); the freshest wins, then that order.
-- staleness = priced_at - observed_at (for a USD route: of the older of the two closes).
-- Exact arithmetic: a quotient is computed on integers (closes to 12 decimals) and rounded
-- half up to 18 decimals; no value passes through a float.
with hourly as (
    select
        exchange,
        market,
        split_part(market, '-', 1) as base,
        split_part(market, '-', 2) as quote,
        close_time,
        close,
        volume
    from candles
    where interval = '1h'
),

observed as (
    select * from hourly where volume > 0
),

eur_rates as (
    select
        close_time,
        close as rate,
        (close::decimal(38, 12) * 1000000000000)::hugeint as rate_units
    from observed
    where exchange = 'bitstamp' and market = 'EUR-USD' and close > 0
),

direct as (
    select
        base as asset,
        close_time as as_of,
        close_time as observed_at,
        close as price,
        exchange || ' ' || market || ' 1h' as source,
        case exchange when 'bitvavo' then 1 else 2 end as priority
    from observed
    where quote = 'EUR' and base <> 'EUR'
),

usd_quoted as (
    select
        observed.base as asset,
        observed.close_time,
        (observed.close::decimal(38, 12) * 1000000000000)::hugeint as price_units,
        observed.exchange || ' ' || observed.market || ' 1h / bitstamp EUR-USD 1h' as source
    from observed
    where observed.exchange = 'bitstamp' and observed.quote = 'USD' and observed.base <> 'EUR'
),

via_usd as (
    select
        usd_quoted.asset,
        usd_quoted.close_time as as_of,
        least(usd_quoted.close_time, eur_rates.close_time) as observed_at,
        (
            (usd_quoted.price_units * 2000000000000000000 + eur_rates.rate_units)
            // (2 * eur_rates.rate_units)
        )::decimal(38, 0) * 0.000000000000000001::decimal(38, 18) as price,
        usd_quoted.source,
        3 as priority
    from usd_quoted
    asof inner join eur_rates on usd_quoted.close_time >= eur_rates.close_time
),

usd as (
    select
        'USD' as asset,
        close_time as as_of,
        close_time as observed_at,
        (
            (2000000000000000000000000000000::hugeint + rate_units) // (2 * rate_units)
        )::decimal(38, 0) * 0.000000000000000001::decimal(38, 18) as price,
        'bitstamp EUR-USD 1h (inverted)' as source,
        1 as priority
    from eur_rates
),

observations as (
    select asset, as_of, observed_at, price::decimal(38, 18) as price, source, priority
    from direct
    union all
    select asset, as_of, observed_at, price, source, priority from via_usd
    union all
    select asset, as_of, observed_at, price, source, priority from usd
),

series as (
    select asset, source, priority, min(as_of) as first_observed_at
    from observations
    group by asset, source, priority
),

landed_until as (
    select max(close_time) as close_time from hourly
),

hours as (
    select
        asset,
        to_timestamp(unnest(range(
            epoch_ms(min(first_observed_at)) // 1000,
            epoch_ms((select close_time from landed_until)) // 1000 + 1,
            3600
        ))) as priced_at
    from series
    group by asset
),

candidates as (
    select
        hours.asset,
        hours.priced_at,
        series.source,
        series.priority
    from hours
    inner join series
        on series.asset = hours.asset
        and series.first_observed_at <= hours.priced_at
),

priced as (
    select
        candidates.asset,
        candidates.priced_at,
        observations.price,
        candidates.source,
        candidates.priority,
        observations.observed_at
    from candidates
    asof inner join observations
        on observations.asset = candidates.asset
        and observations.source = candidates.source
        and candidates.priced_at >= observations.as_of
),

final as (
    select
        asset,
        'EUR' as currency,
        priced_at,
        price,
        source,
        observed_at,
        priced_at - observed_at as staleness
    from priced
    qualify row_number() over (
        partition by asset, priced_at order by observed_at desc, priority
    ) = 1
)

select * from final
