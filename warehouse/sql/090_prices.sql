-- prices: an hourly valuation series per asset in each reporting currency (`currency` 'EUR',
-- 'USD' or 'GBP'), from landed 1h candles. priced_at is the end of each hour from the asset's first
-- observation to the end of the landed candles; price is the close of the freshest observation
-- at or before it (an hour with trades; Bitstamp's zero-volume filler candles are not
-- observations). The reporting currency itself is not listed: it is worth 1 (the engine's
-- PriceBook says so).
-- EUR, in this order on equal freshness:
--   1. ASSET-EUR on Bitvavo, 2. ASSET-EUR on Bitstamp, 3. ASSET-USD on Bitstamp divided by
--   Bitstamp EUR-USD (USD itself: 1 / EUR-USD); the freshest wins, then that order.
-- USD, in this order on equal freshness:
--   1. ASSET-USD on Bitstamp (a direct USD candle; EUR itself: the EUR-USD close),
--   2. the cross rate price_eur(ASSET, hour) / price_eur(USD, hour), i.e. the hour's EUR price
--      times the EUR-USD close at or before that hour (price_eur(USD) is 1 / that close: its
--      rounded value is never divided by, so the cross rate is rounded once);
--   the freshest wins, then that order (a direct candle of the same hour beats the cross rate).
-- GBP, from Bitstamp's GBP-EUR (Bitstamp has no EUR-GBP market): EUR itself is 1 / the GBP-EUR
--   close; every other asset (USD included) is its hour's EUR price divided by the GBP-EUR close
--   at or before that hour, one quotient rounded once (no direct GBP candle is used). GBP's own
--   EUR price is the GBP-EUR close (an ASSET-EUR candle like any other).
-- staleness = priced_at - observed_at (for a derived price: of the older of its two inputs).
-- Exact arithmetic: a quotient or product is computed on integers (closes to 12 decimals,
-- EUR prices to 18) and rounded half up to 18 decimals; no value passes through a float. So an
-- inverted or divided GBP price is within 0.5e-18 of the exact quotient of its inputs.
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

-- the price of one EUR in each other reporting currency: Bitstamp's EUR-USD close (EUR is the
-- base: the rate is the close) and GBP-EUR close (EUR is the quote: the rate is 1 / the close),
-- as the exact fraction rate_num / rate_den of integers (the close in units of 1e-12)
fx_rates as (
    select
        case when base = 'EUR' then quote else base end as currency,
        market,
        close_time,
        close as rate,
        close_units_of_text(close) as rate_units,
        base <> 'EUR' as inverted,
        case when base = 'EUR' then rate_units else 1000000000000::hugeint end as rate_num,
        case when base = 'EUR' then 1000000000000::hugeint else rate_units end as rate_den,
        observed.exchange
    from observed
    inner join staging.exchange_rules as rules using (exchange)
    where list_contains(rules.fx_markets, observed.market) and close > 0
),

eur_rates as (
    select close_time, rate, rate_units, exchange from fx_rates where currency = 'USD'
),

-- a close is a price in its quote currency: in EUR (Bitvavo's first), and Bitstamp's in USD
direct as (
    select
        quote as currency,
        base as asset,
        close_time as as_of,
        close_time as observed_at,
        close as price,
        exchange || ' ' || market || ' 1h' as source,
        case when rules.eur_prices_first or quote = 'USD' then 1 else 2 end as priority
    from observed
    inner join staging.exchange_rules as rules using (exchange)
    where (quote = 'EUR' and base <> 'EUR')
        or (rules.usd_prices and quote = 'USD' and base not in ('EUR', 'USD'))
),

usd_quoted as (
    select
        observed.base as asset,
        observed.close_time,
        observed.close,
        observed.exchange || ' ' || observed.market || ' 1h / ' as source
    from observed
    inner join staging.exchange_rules as rules using (exchange)
    where rules.usd_prices and observed.quote = 'USD' and observed.base <> 'EUR'
),

via_usd as (
    select
        usd_quoted.asset,
        usd_quoted.close_time as as_of,
        least(usd_quoted.close_time, eur_rates.close_time) as observed_at,
        null as price,
        usd_quoted.source || eur_rates.exchange || ' EUR-USD 1h' as source,
        3 as priority,
        usd_quoted.close as quotient_num,
        eur_rates.rate_units as quotient_den
    from usd_quoted
    asof inner join eur_rates on usd_quoted.close_time >= eur_rates.close_time
),

usd as (
    select
        'USD' as asset,
        close_time as as_of,
        close_time as observed_at,
        inverted_close(rate_units) as price,
        exchange || ' EUR-USD 1h (inverted)' as source,
        1 as priority
    from eur_rates
),

eur_in_fx as (
    select
        currency,
        'EUR' as asset,
        close_time as as_of,
        close_time as observed_at,
        case when inverted then null else rate end as price,
        exchange || ' ' || market || ' 1h' || case when inverted then ' (inverted)' else '' end
            as source,
        1 as priority,
        -- 1 / the close (`inverted_close`), computed for the hours it is the price chosen
        case when inverted then 1 end as quotient_num,
        case when inverted then rate_units end as quotient_den
    from fx_rates
),

observations as (
    select
        currency,
        asset,
        as_of,
        observed_at,
        price::decimal(38, 18) as price,
        source,
        priority,
        null::decimal(38, 18) as quotient_num,
        null::hugeint as quotient_den
    from direct
    union all
    select 'EUR', asset, as_of, observed_at, price, source, priority, quotient_num, quotient_den
    from via_usd
    union all
    select 'EUR', asset, as_of, observed_at, price, source, priority, null, null from usd
    union all
    select
        currency,
        asset,
        as_of,
        observed_at,
        price::decimal(38, 18),
        source,
        priority,
        quotient_num,
        quotient_den
    from eur_in_fx
),

series as (
    select currency, asset, source, priority, min(as_of) as first_observed_at
    from observations
    group by currency, asset, source, priority
),

landed_until as (
    select max(close_time) as close_time from hourly
),

hours as (
    select
        currency,
        asset,
        to_timestamp(unnest(range(
            epoch_ms(min(first_observed_at)) // 1000,
            epoch_ms((select close_time from landed_until)) // 1000 + 1,
            3600
        ))) as priced_at
    from series
    group by currency, asset
),

candidates as (
    select
        hours.currency,
        hours.asset,
        hours.priced_at,
        series.source,
        series.priority
    from hours
    inner join series
        on series.currency = hours.currency
        and series.asset = hours.asset
        and series.first_observed_at <= hours.priced_at
),

priced as (
    select
        candidates.currency,
        candidates.asset,
        candidates.priced_at,
        observations.price,
        candidates.source,
        candidates.priority,
        observations.observed_at,
        observations.quotient_num,
        observations.quotient_den
    from candidates
    asof inner join observations
        on observations.currency = candidates.currency
        and observations.asset = candidates.asset
        and observations.source = candidates.source
        and candidates.priced_at >= observations.as_of
),

eur_chosen as (
    select asset, priced_at, price, source, observed_at, quotient_num, quotient_den
    from priced
    where currency = 'EUR'
    qualify row_number() over (
        partition by asset, priced_at order by observed_at desc, priority
    ) = 1
),

-- a USD close divided by the EUR-USD close only where it is the price chosen
eur_final as (
    select
        asset,
        priced_at,
        case
            when price is null then close_quotient(quotient_num, quotient_den) else price
        end as price,
        source,
        observed_at
    from eur_chosen
),

-- price_eur(asset) times one EUR in the currency: * the EUR-USD close (= / price_eur(USD)), or
-- / the GBP-EUR close. The EUR price in units of 1e-18 (split at the point: the whole number
-- times 1e18 would overflow DECIMAL(38, 18)) times rate_num / rate_den, rounded half up to 18
-- decimals once (the macros are in 000_macros.sql)
cross_rates as (
    select
        fx_rates.currency,
        eur_final.asset,
        eur_final.priced_at,
        -- the price, computed for the hours it is the one chosen (fx_final)
        eur_final.price as eur_price,
        fx_rates.rate_num,
        fx_rates.rate_den,
        eur_final.source
            || case when fx_rates.inverted then ' / ' else ' * ' end
            || fx_rates.exchange || ' ' || fx_rates.market || ' 1h' as source,
        2 as priority,
        least(eur_final.observed_at, fx_rates.close_time) as observed_at
    from eur_final
    -- (never EUR: written out, so that a query of EUR prices skips the cross rates altogether)
    cross join (select distinct currency from fx_rates where currency <> 'EUR') as currencies
    asof inner join fx_rates
        on fx_rates.currency = currencies.currency
        and eur_final.priced_at >= fx_rates.close_time
    where eur_final.asset <> currencies.currency
),

-- USD and GBP: the fresher of a direct observation and the cross rate, the direct one on a tie
fx_chosen as (
    select *
    from (
        select
            currency,
            asset,
            priced_at,
            price,
            source,
            priority,
            observed_at,
            quotient_num,
            quotient_den,
            null::decimal(38, 18) as eur_price,
            null::hugeint as rate_num,
            null::hugeint as rate_den
        from priced
        where currency <> 'EUR'
        union all
        select
            currency,
            asset,
            priced_at,
            null,
            source,
            priority,
            observed_at,
            null,
            null,
            eur_price,
            rate_num,
            rate_den
        from cross_rates
    )
    where currency <> 'EUR'  -- as above: lets `where currency = 'EUR'` drop this branch
    qualify row_number() over (
        partition by currency, asset, priced_at order by observed_at desc, priority
    ) = 1
),

fx_final as (
    select
        currency,
        asset,
        priced_at,
        case
            when price is not null then price
            when quotient_den is not null then close_quotient(quotient_num, quotient_den)
            -- the cross rate: the EUR price in units of 1e-18 times rate_num / rate_den
            else units_to_decimal(rounded_quotient(
                decimal_units_of_text(eur_price) * rate_num, rate_den
            ))
        end as price,
        source,
        observed_at
    from fx_chosen
),

final as (
    select
        asset,
        'EUR' as currency,
        priced_at,
        price,
        source,
        observed_at,
        timestamptz_difference(priced_at, observed_at) as staleness
    from eur_final
    union all
    select
        asset,
        currency,
        priced_at,
        price,
        source,
        observed_at,
        timestamptz_difference(priced_at, observed_at) as staleness
    from fx_final
)

select * from final
