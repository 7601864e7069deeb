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

fx_closes as (
    select observed.*
    from observed
    inner join staging.exchange_rules as rules using (exchange)
    where list_contains(rules.fx_markets, observed.market) and close > 0
),

-- an FX close in units of 1e-12 and its inverse, once per distinct close (closes repeat)
fx_units as (
    select close, units, inverted_close(units) as inverse
    from (select close, close_units_of_text(close) as units from fx_closes group by close)
),

-- the price of one EUR in each other reporting currency: Bitstamp's EUR-USD close (EUR is the
-- base: the rate is the close) and GBP-EUR close (EUR is the quote: the rate is 1 / the close),
-- as the exact fraction rate_num / rate_den of integers (the close in units of 1e-12)
fx_rates as (
    select
        case when base = 'EUR' then quote else base end as currency,
        market,
        close_time,
        fx_closes.close as rate,
        fx_units.units as rate_units,
        fx_units.inverse,
        base <> 'EUR' as inverted,
        case when base = 'EUR' then rate_units else 1000000000000::hugeint end as rate_num,
        case when base = 'EUR' then 1000000000000::hugeint else rate_units end as rate_den,
        fx_closes.exchange
    from fx_closes
    inner join fx_units using (close)
),

eur_rates as (
    select close_time, rate, rate_units, inverse, exchange from fx_rates where currency = 'USD'
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
        -- a EUR close of the same hour (`direct`) is as fresh and comes first: never chosen
        and not exists (
            select 1
            from observed as eur
            inner join staging.exchange_rules as eur_rules on eur_rules.exchange = eur.exchange
            where eur.quote = 'EUR' and eur.base = observed.base
                and eur.close_time = observed.close_time
        )
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
        inverse as price,
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
        case when inverted then inverse else rate end as price,
        exchange || ' ' || market || ' 1h' || case when inverted then ' (inverted)' else '' end
            as source,
        1 as priority
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
        null,
        null
    from eur_in_fx
),

-- the observation each hour takes, as it changes: per currency and asset, in time order, the
-- best of everything observed by then: the freshest, then priority, then a source's latest.
-- Freshness only grows along one source's observations, so this is each source's latest
-- observation compared with the others'. An observation is ranked by one 128-bit integer,
-- `freshness`: observed_at (µs), 15 - priority and as_of (µs), in that order of significance
-- (52, 4 and 68 bits; times since 1970), so that the best by then is a running max of integers.
ranked as (
    select
        *,
        (((epoch_us(observed_at)::hugeint << 4) + (15 - priority)) << 68)
            + epoch_us(as_of) as freshness
    from observations
),

-- the observations that are the best when they are made; each is the price until the next
-- one (on a tie the last source by name, whose span the others' empty spans leave whole)
chosen as (
    select
        *,
        lead(as_of) over (partition by currency, asset order by as_of, source) as until
    from (
        select
            *,
            -- (the default frame: every observation up to this one's as_of, at it included)
            max(freshness) over by_time as best,
            first_value(as_of) over by_time as first_observed_at
        from ranked
        window by_time as (partition by currency, asset order by as_of)
    )
    where freshness = best
),

-- the hours (priced_at) are the ends of the hours from an asset's first observation to the
-- end of the landed candles: whole seconds since the epoch, start + 3600 k. An observation is
-- the price of the hours from its as_of to the next one's (microseconds compared exactly).
-- The price is computed here, once per observation chosen, not once per hour.
spans as (
    select
        chosen.currency,
        chosen.asset,
        epoch_ms(chosen.first_observed_at) // 1000 as start,
        -- the first k at or after as_of and the first at or after until (or past the end)
        (epoch_us(chosen.as_of) - start * 1000000 + 3599999999) // 3600000000 as k_from,
        least(
            coalesce(
                (epoch_us(chosen.until) - start * 1000000 + 3599999999) // 3600000000,
                9223372036854775807
            ),
            (epoch_ms(landed_until.close_time) // 1000 - start) // 3600 + 1
        ) as k_until,
        case
            when chosen.price is null then close_quotient(chosen.quotient_num, chosen.quotient_den)
            else chosen.price
        end as price,
        chosen.source,
        chosen.priority,
        chosen.observed_at
    from chosen
    cross join (select max(close_time) as close_time from hourly) as landed_until
    where k_from < k_until
),

priced as not materialized (
    select
        currency,
        asset,
        to_timestamp(start + 3600 * unnest(range(k_from, k_until))) as priced_at,
        price,
        source,
        priority,
        observed_at
    from spans
),

eur_final as (
    select asset, priced_at, price, source, observed_at from priced where currency = 'EUR'
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

-- USD and GBP: the fresher of a direct observation and the cross rate of the hour, the direct
-- one on a tie (priority 1 before the cross rate's 2)
fx_chosen as (
    select
        currency,
        asset,
        priced_at,
        case when use_direct then price end as price,
        case when use_direct then source else cross_source end as source,
        case when use_direct then observed_at else cross_observed_at end as observed_at,
        case when not use_direct then eur_price end as eur_price,
        rate_num,
        rate_den
    from (
        select
            currency,
            asset,
            priced_at,
            direct.price,
            direct.source,
            direct.observed_at,
            cross_rates.source as cross_source,
            cross_rates.observed_at as cross_observed_at,
            cross_rates.eur_price,
            cross_rates.rate_num,
            cross_rates.rate_den,
            direct.source is not null and (
                cross_rates.source is null
                or direct.observed_at > cross_rates.observed_at
                or (
                    direct.observed_at = cross_rates.observed_at
                    and direct.priority <= cross_rates.priority
                )
            ) as use_direct
        from (select * from priced where currency <> 'EUR') as direct
        full outer join cross_rates using (currency, asset, priced_at)
    )
    where currency <> 'EUR'  -- as above: lets `where currency = 'EUR'` drop this branch
),

fx_final as (
    select
        currency,
        asset,
        priced_at,
        case
            when price is not null then price
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
