-- fill_checks: every fill of `fills` checked five ways. status is 'ok' when no check failed,
-- else 'problem', and problems names the failed checks ('quote', 'fee', 'duplicate',
-- 'orphan', 'history'); a check that cannot be judged (null) is not a failure.
--
-- 1. quote: computed_quote = base_amount × price (exact; rounded half up to 18 decimals only
--    if the product needs more, computed_exact false); quote_difference = quote_amount -
--    computed_quote; quote_rule says how it is judged (EXCHANGES.md), quote_ok the verdict:
--      'exact' (Bitvavo /v2/trades: the quote is amount × price exactly): difference 0;
--      'quote rounded' (Bitstamp: the quote amount is authoritative, rounded to its
--          decimals as sent): |difference| ≤ half a unit of its last decimal;
--      'leg rounded' (Bitvavo app trades: the exchange rounds one leg, down, to its decimals):
--          |difference| < a unit of the quote's last decimal, or < price × a unit of the
--          base's last decimal.
--    quote_decimals: the quote's decimals as sent, read from the row's raw text (a padded
--    "-1083.72" has 2; from the stored value when the text is not found).
-- 2. fee: effective_rate = fee / quote_amount (rounded half away from zero to 12 decimals),
--    against the fee_schedules snapshot of the fill's exchange, account and market (an
--    account-wide one when the market has none): the newest taken at or before the fill, else
--    the oldest (schedule_in_force false). schedule_rate is its maker or taker rate by the
--    fill's taker flag; when the flag is unknown (Bitstamp's ledger does not say), the higher
--    of the two. allowed_fee = quote_amount × schedule_rate, exact. fee_check:
--      'ok'                   fee ≤ allowed_fee + a unit of the fee's last decimal as sent;
--      'above_schedule'       above that, with a snapshot in force at the fill's time;
--      'above_later_schedule' above that, judged by a later snapshot only. Not a failure:
--                             snapshots hold the current tier only, and a fill made while the
--                             trailing volume was lower paid an earlier tier's higher rate;
--      'unsettled' / 'no_fee' no fee yet (an unsettled Bitvavo fill) / none reported;
--      'other_asset'          the fee is not in the quote asset: not comparable;
--      'no_schedule'          no snapshot for the market or the account;
--      'not_applicable'       Bitvavo app trades pay the app's fee, not the order book's.
--    Only 'above_schedule' fails the check.
-- 3. duplicate: landed_copies counts the landed rows (every file and source) with the fill's
--    (exchange, account, market, fill_id), landed_sources their sources when more than one;
--    more than one is a duplicate (overlapping files, or one fill landed by two listings).
-- 4. orphan: the row the fill's balance movement comes from is missing: a Bitstamp fill
--    without its user_transactions row in bitstamp_ledger (the ledger, so the balances, lack
--    it), or a settled Bitvavo /v2/trades fill that no landed account/history item (which lists
--    every balance change) is matched to (lost, or listed after the history was read: the next
--    sync lists it). Matches are by market, side, time and amounts, per fill or per order, not
--    by id (bitvavo_history_matches, written by the sync). App trades come from
--    account/history; unsettled fills, and fills only an ambiguous item fits, are not judged.
-- 5. history: an account/history item fits this fill ambiguously (it fits several sets of
--    fills equally, or only fills already matched to another item), or was matched to it by id
--    alone; history_problem says which item and why, history_items lists the items matched.
--
-- Exact and fast arithmetic: a DECIMAL(38,18) product is DECIMAL(38,36) and overflows from
-- 100, and rescaling or dividing 128-bit integers is slow. So each factor is read from its
-- 18-decimal text as a whole part and its fraction in two 9-digit halves: every partial
-- product fits its integer type, and only 64-bit integers are ever divided.
with fill_source as (
    select *
    from read_parquet(
        '{lake}/fills/*/*/*.parquet',
        hive_partitioning=true, union_by_name=true, filename=true
    )
),

-- per fill: its landed rows, and the raw text of the one `fills` keeps (an order-book row
-- first, then the newest fetch)
landed as (
    select
        exchange::varchar as exchange,
        account::varchar as account,
        market,
        fill_id,
        count(*) as landed_copies,
        arg_max(
            raw, {'book': source = 'trades', 'fetched_at': fetched_at, 'file': filename}
        ) as raw
    from fill_source
    group by all
),

landed_sources as (
    select
        landed.exchange,
        landed.account,
        landed.market,
        landed.fill_id,
        string_agg(distinct fill_source.source, ', ' order by fill_source.source) as sources
    from landed
    inner join fill_source
        on fill_source.exchange::varchar = landed.exchange
        and fill_source.account::varchar = landed.account
        and fill_source.market = landed.market
        and fill_source.fill_id = landed.fill_id
    where landed.landed_copies > 1
    group by all
),

ledger_source as (
    select *
    from read_parquet(
        '{lake}/bitstamp_ledger/*/*.parquet',
        hive_partitioning=true, union_by_name=true
    )
),

ledger_rows as (
    select distinct 'bitstamp' as exchange, account::varchar as account, entry_id::varchar as id
    from ledger_source
),

history_source as (
    select *
    from read_parquet(
        '{lake}/bitvavo_history/*/*.parquet',
        hive_partitioning=true, union_by_name=true
    )
),

history_rows as (
    select distinct 'bitvavo' as exchange, account::varchar as account, transaction_id as id
    from history_source
),

match_source as (
    select *
    from read_parquet(
        '{lake}/bitvavo_history_matches/*/*.parquet',
        hive_partitioning=true, union_by_name=true
    )
),

-- per order-book fill: the landed account/history items matched to it, and their problems
history_links as (
    select
        history_rows.exchange,
        history_rows.account,
        match_source.market,
        match_source.fill_id,
        bool_or(match_source.status = 'matched') as history_matched,
        string_agg(
            distinct match_source.transaction_id, ', ' order by match_source.transaction_id
        ) filter (where match_source.status = 'matched') as history_items,
        string_agg(
            distinct match_source.problem, '; ' order by match_source.problem
        ) as history_problem
    from match_source
    inner join history_rows
        on history_rows.account = match_source.account::varchar
        and history_rows.id = match_source.transaction_id
    group by all
),

schedule_source as (
    select *
    from read_parquet(
        '{lake}/fee_schedules/*/*/*.parquet',
        hive_partitioning=true, union_by_name=true, filename=true
    )
),

schedules as (
    select
        exchange::varchar as exchange,
        account::varchar as account,
        market,
        maker,
        taker,
        taken_at
    from schedule_source
    qualify row_number() over (
        partition by exchange, account, market, taken_at order by fetched_at desc, filename desc
    ) = 1
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
    from (select distinct exchange, account, market from landed) as traded
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
        abs(maker)::varchar as maker_digits,
        abs(taker)::varchar as taker_digits,
        abs(higher)::varchar as higher_digits
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
        landed.raw,
        landed.landed_copies,
        landed_sources.sources as landed_sources,
        case
            when fills.exchange = 'bitstamp' then ledger_rows.id is null
            when fills.source = 'account/history' then false
            when fills.exchange = 'bitvavo' and fills.settled then case
                when history_links.history_matched then false
                when history_links.fill_id is null then true
            end
        end as orphan,
        history_links.history_items,
        history_links.history_problem,
        schedule_periods.taken_at as schedule_taken_at,
        schedule_periods.in_force as schedule_in_force,
        case fills.taker
            when true then schedule_periods.taker
            when false then schedule_periods.maker
            else schedule_periods.higher
        end as schedule_rate,
        case fills.taker
            when true then schedule_periods.taker_digits
            when false then schedule_periods.maker_digits
            else schedule_periods.higher_digits
        end as rate_digits
    from fills
    left join landed
        on landed.exchange = fills.exchange
        and landed.account = fills.account
        and landed.market = fills.market
        and landed.fill_id = fills.fill_id
    left join landed_sources
        on landed_sources.exchange = fills.exchange
        and landed_sources.account = fills.account
        and landed_sources.market = fills.market
        and landed_sources.fill_id = fills.fill_id
    left join ledger_rows
        on ledger_rows.exchange = fills.exchange
        and ledger_rows.account = fills.account
        and ledger_rows.id = fills.fill_id
    left join history_links
        on history_links.exchange = fills.exchange
        and history_links.account = fills.account
        and history_links.market = fills.market
        and history_links.fill_id = fills.fill_id
    asof left join schedule_periods
        on schedule_periods.exchange = fills.exchange
        and schedule_periods.account = fills.account
        and schedule_periods.market = fills.market
        and fills.executed_at >= schedule_periods.judges_from
),

ruled as (
    select
        *,
        case
            when exchange = 'bitvavo' and source = 'trades' then 'exact'
            when exchange = 'bitvavo' and source = 'account/history' then 'leg rounded'
            else 'quote rounded'
        end as quote_rule,
        case
            when exchange = 'bitstamp' then strpos(raw, '"' || lower(quote_asset) || '":')
        end as quote_key_at
    from joined
),

-- the amounts' texts as sent: Bitstamp's quote is its currency's key, an app trade's legs
-- are sentAmount / receivedAmount; the fee is "fee" in both /v2/trades and user_transactions
texts as (
    select
        * exclude (raw, quote_key_at),
        case
            when quote_key_at > 0 then regexp_extract(
                substr(raw, quote_key_at + length(quote_asset) + 3), '^"?-?(\d*\.?\d*)', 1
            )
            when quote_rule = 'leg rounded' and side = 'buy'
                then regexp_extract(raw, '"sentAmount":"?-?(\d*\.?\d*)', 1)
            when quote_rule = 'leg rounded'
                then regexp_extract(raw, '"receivedAmount":"?-?(\d*\.?\d*)', 1)
        end as quote_text,
        case
            when quote_rule = 'leg rounded' and side = 'buy'
                then regexp_extract(raw, '"receivedAmount":"?-?(\d*\.?\d*)', 1)
            when quote_rule = 'leg rounded'
                then regexp_extract(raw, '"sentAmount":"?-?(\d*\.?\d*)', 1)
        end as base_text,
        regexp_extract(raw, '"fee":"?-?(\d*\.?\d*)', 1) as fee_text
    from ruled
),

decimals as (
    select
        * exclude (quote_text, base_text, fee_text),
        least(18, case
            when quote_rule = 'exact' then null
            when strpos(quote_text, '.') > 0 then length(quote_text) - strpos(quote_text, '.')
            when quote_text <> '' then 0
            else length(split_part(rtrim(rtrim(quote_amount::varchar, '0'), '.'), '.', 2))
        end) as quote_decimals,
        least(18, case
            when quote_rule <> 'leg rounded' then null
            when strpos(base_text, '.') > 0 then length(base_text) - strpos(base_text, '.')
            when base_text <> '' then 0
            else length(split_part(rtrim(rtrim(base_amount::varchar, '0'), '.'), '.', 2))
        end) as base_decimals,
        least(18, case
            when strpos(fee_text, '.') > 0 then length(fee_text) - strpos(fee_text, '.')
            when fee_text <> '' then 0
            else length(split_part(rtrim(rtrim(abs(fee)::varchar, '0'), '.'), '.', 2))
        end) as fee_decimals,
        abs(base_amount)::varchar as base_digits,
        abs(price)::varchar as price_digits,
        abs(quote_amount)::varchar as quote_digits,
        abs(fee)::varchar as fee_digits
    from texts
),

-- whole part (HUGEINT), and the 18-digit fraction as two 9-digit halves (BIGINT)
parts as (
    select
        * exclude (base_digits, price_digits, quote_digits, rate_digits, fee_digits),
        split_part(base_digits, '.', 1)::hugeint as base_whole,
        left(split_part(base_digits, '.', 2), 9)::bigint as base_high,
        right(split_part(base_digits, '.', 2), 9)::bigint as base_low,
        split_part(price_digits, '.', 1)::hugeint as price_whole,
        left(split_part(price_digits, '.', 2), 9)::bigint as price_high,
        right(split_part(price_digits, '.', 2), 9)::bigint as price_low,
        split_part(quote_digits, '.', 1)::hugeint as quote_whole,
        left(split_part(quote_digits, '.', 2), 9)::bigint as quote_high,
        right(split_part(quote_digits, '.', 2), 9)::bigint as quote_low,
        sign(schedule_rate) as rate_sign,
        split_part(rate_digits, '.', 1)::hugeint as rate_whole,
        left(split_part(rate_digits, '.', 2), 9)::bigint as rate_high,
        right(split_part(rate_digits, '.', 2), 9)::bigint as rate_low,
        sign(fee) as fee_sign,
        split_part(fee_digits, '.', 1)::hugeint as fee_whole,
        split_part(fee_digits, '.', 2)::bigint as fee_fraction
    from decimals
),

-- a × b in units of 1e-18 = whole·whole·1e18 + whole·fraction + fraction·whole
-- + fraction·fraction / 1e18, the last from the halves: high·high, then the middle terms
-- carried in 64 bits; remainder (units of 1e-36) decides the rounding
halves as (
    select
        *,
        base_high * price_low + base_low * price_high
        + (base_low * price_low) // 1000000000 as computed_middle,
        (base_low * price_low) % 1000000000 as computed_tail,
        quote_high * rate_low + quote_low * rate_high
        + (quote_low * rate_low) // 1000000000 as allowed_middle,
        (quote_low * rate_low) % 1000000000 as allowed_tail
    from parts
),

products as (
    select
        *,
        base_whole * price_whole * 1000000000000000000
        + base_whole * (price_high * 1000000000 + price_low)
        + (base_high * 1000000000 + base_low) * price_whole
        + base_high * price_high
        + computed_middle // 1000000000 as computed_floor,
        (computed_middle % 1000000000) * 1000000000 + computed_tail as computed_rest,
        quote_whole * rate_whole * 1000000000000000000
        + quote_whole * (rate_high * 1000000000 + rate_low)
        + (quote_high * 1000000000 + quote_low) * rate_whole
        + quote_high * rate_high
        + allowed_middle // 1000000000 as allowed_floor,
        (allowed_middle % 1000000000) * 1000000000 + allowed_tail as allowed_rest,
        fee_whole * 1000000000000000000 + fee_fraction as fee_units,
        nullif(
            quote_whole * 1000000000000000000 + quote_high * 1000000000 + quote_low, 0
        ) as quote_units,
        price_whole * 1000000000000000000 + price_high * 1000000000 + price_low as price_units
    from halves
),

amounts as (
    select
        *,
        (computed_floor + case when computed_rest >= 500000000000000000 then 1 else 0 end)
            ::decimal(38, 0) * 0.000000000000000001::decimal(38, 18) as computed_quote,
        computed_rest = 0 as computed_exact,
        (
            rate_sign * (
                allowed_floor + case when allowed_rest >= 500000000000000000 then 1 else 0 end
            )
        )::decimal(38, 0) * 0.000000000000000001::decimal(38, 18) as allowed_fee,
        -- fee / quote to 12 decimals, half away from zero (one 128-bit division; null for a
        -- fee of 5·10^7 or more, whose units times 2·10^12 would not fit)
        case when fee_whole < 50000000 then (
            fee_sign * ((fee_units * 2000000000000 + quote_units) // (2 * quote_units))
        )::decimal(38, 0) * 0.000000000001::decimal(38, 18) end as effective_rate
    from products
),

units as (
    select
        *,
        quote_amount - computed_quote as quote_difference,
        (
            [
                '1', '0.1', '0.01', '0.001', '0.0001', '0.00001', '0.000001', '0.0000001',
                '0.00000001', '0.000000001', '0.0000000001', '0.00000000001',
                '0.000000000001', '0.0000000000001', '0.00000000000001',
                '0.000000000000001', '0.0000000000000001', '0.00000000000000001',
                '0.000000000000000001'
            ]::decimal(38, 18)[]
        ) as unit
    from amounts
),

judged as (
    select
        * exclude (unit),
        case
            when quote_rule = 'exact' then quote_difference = 0 and computed_exact
            when quote_rule = 'quote rounded'
                then 2 * abs(quote_difference) <= unit[quote_decimals + 1]
            when abs(quote_difference) < unit[quote_decimals + 1] then true
            -- |difference| < price × 10^-base_decimals, that bound rounded up to 18 decimals
            -- (the same verdict: the difference has 18 decimals)
            else abs(quote_difference) < (
                (price_units + ('1' || repeat('0', base_decimals))::hugeint - 1)
                // ('1' || repeat('0', base_decimals))::hugeint
            )::decimal(38, 0) * 0.000000000000000001::decimal(38, 18)
        end as quote_ok,
        case
            when source = 'account/history' and exchange = 'bitvavo' then 'not_applicable'
            when fee is null and not settled then 'unsettled'
            when fee is null then 'no_fee'
            when fee_asset is distinct from quote_asset then 'other_asset'
            when schedule_rate is null then 'no_schedule'
            when fee <= allowed_fee + unit[fee_decimals + 1] then 'ok'
            when schedule_in_force then 'above_schedule'
            else 'above_later_schedule'
        end as fee_check
    from units
),

final as (
    select
        exchange,
        account,
        market,
        fill_id,
        order_id,
        source,
        executed_at,
        side,
        taker,
        settled,
        base_amount,
        price,
        quote_amount,
        computed_quote,
        computed_exact,
        quote_difference,
        quote_rule,
        case when quote_rule <> 'exact' then quote_decimals end as quote_decimals,
        quote_ok,
        fee,
        fee_asset,
        effective_rate,
        schedule_rate,
        schedule_taken_at,
        schedule_in_force,
        allowed_fee,
        fee_check,
        coalesce(landed_copies, 0) as landed_copies,
        landed_sources,
        coalesce(landed_copies, 0) > 1 as duplicate,
        orphan,
        history_items,
        history_problem,
        nullif(
            concat_ws(
                ', ',
                case when not quote_ok then 'quote' end,
                case when fee_check = 'above_schedule' then 'fee' end,
                case when duplicate then 'duplicate' end,
                case when orphan then 'orphan' end,
                case when history_problem is not null then 'history' end
            ),
            ''
        ) as problems,
        case when problems is null then 'ok' else 'problem' end as status
    from judged
)

select * from final
