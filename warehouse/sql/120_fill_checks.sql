-- fill_checks: every fill of `fills` checked five ways. status is 'ok' when no check failed,
-- else 'problem', and problems names the failed checks ('quote', 'fee', 'duplicate',
-- 'orphan', 'history'); a check that cannot be judged (null) is not a failure.
--
-- 1. quote: computed_quote = base_amount × price (exact; rounded half up to 18 decimals only
--    if the product needs more, computed_exact false); quote_difference = quote_amount -
--    computed_quote; quote_rule says how it is judged (docs/exchanges.md), quote_ok the verdict:
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
-- Exact and fast arithmetic: the macros of 000_macros.sql (exact_product, rounded_quotient…).
with fill_source as (
    select * from staging.fills_landed
),

-- per fill: how many rows landed for it (every file and source)
copies as (
    select exchange, account, market, fill_id, count(*) as landed_copies
    from fill_source
    group by all
),

-- the sources of each fill landed more than once (aggregated over those fills only)
copy_sources as (
    select
        exchange,
        account,
        market,
        fill_id,
        string_agg(distinct source, ', ' order by source) as landed_sources
    from fill_source
    semi join (select * from copies where landed_copies > 1) as copied
        using (exchange, account, market, fill_id)
    group by all
),

-- the raw text of the row `fills` keeps (an order-book row first, then the newest fetch): the
-- one staged row of its source
kept_raw as (
    select fills.exchange, fills.account, fills.market, fills.fill_id, staged.raw
    from fills
    inner join staging.fills as staged using (exchange, account, market, fill_id, source)
),

ledger_rows as (
    select distinct rules.exchange, account, entry_id::varchar as id
    from staging.bitstamp_ledger_landed
    inner join staging.exchange_rules as rules on rules.raw_ledger = 'bitstamp_ledger'
),

history_rows as (
    select distinct rules.exchange, account, transaction_id as id
    from staging.bitvavo_history_landed
    inner join staging.exchange_rules as rules on rules.raw_ledger = 'bitvavo_history'
),

match_source as (
    select * from staging.bitvavo_history_matches_landed
),

-- per order-book fill: the landed account/history items matched to it, and their problems
history_pairs as (
    select
        history_rows.exchange,
        history_rows.account,
        match_source.market,
        match_source.fill_id,
        match_source.transaction_id,
        match_source.status,
        match_source.problem
    from match_source
    inner join history_rows
        on history_rows.account = match_source.account
        and history_rows.id = match_source.transaction_id
),

-- (most fills have one item: its values are the aggregates, which are computed for the others
-- only)
history_counts as (
    select
        exchange,
        account,
        market,
        fill_id,
        count(*) as pairs,
        bool_or(status = 'matched') as history_matched,
        any_value(case when status = 'matched' then transaction_id end) as history_items,
        any_value(problem) as history_problem
    from history_pairs
    group by all
),

history_links as (
    select * exclude (pairs) from history_counts where pairs = 1
    union all
    select
        exchange,
        account,
        market,
        fill_id,
        bool_or(status = 'matched') as history_matched,
        string_agg(distinct transaction_id, ', ' order by transaction_id)
            filter (where status = 'matched') as history_items,
        string_agg(distinct problem, '; ' order by problem) as history_problem
    from history_pairs
    semi join (select * from history_counts where pairs > 1) as several
        using (exchange, account, market, fill_id)
    group by all
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
    from (select distinct exchange, account, market from copies) as traded
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
        greatest(maker, taker) as higher
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
        kept_raw.raw,
        copies.landed_copies,
        copy_sources.landed_sources,
        case
            when rules.raw_ledger_is_balance_ledger then ledger_rows.id is null
            when fills.source = 'account/history' then false
            when not rules.raw_ledger_is_balance_ledger and fills.settled then case
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
        end as schedule_rate
    from fills
    left join copies using (exchange, account, market, fill_id)
    left join copy_sources using (exchange, account, market, fill_id)
    left join kept_raw using (exchange, account, market, fill_id)
    left join ledger_rows
        on ledger_rows.exchange = fills.exchange
        and ledger_rows.account = fills.account
        and ledger_rows.id = fills.fill_id
    left join history_links using (exchange, account, market, fill_id)
    asof left join schedule_periods
        on schedule_periods.exchange = fills.exchange
        and schedule_periods.account = fills.account
        and schedule_periods.market = fills.market
        and fills.executed_at >= schedule_periods.judges_from
    left join staging.exchange_rules as rules on rules.exchange = fills.exchange
),

ruled as (
    select
        joined.*,
        list_contains(rules.fee_unchecked_sources, source) as fee_unchecked,
        case
            when list_contains(rules.exact_quote_sources, source) then 'exact'
            when list_contains(rules.leg_rounded_quote_sources, source) then 'leg rounded'
            else 'quote rounded'
        end as quote_rule,
        case
            when rules.quote_keyed_by_currency then strpos(raw, '"' || lower(quote_asset) || '":')
        end as quote_key_at
    from joined
    left join staging.exchange_rules as rules using (exchange)
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
        case
            when quote_rule <> 'exact' then decimals_as_sent(quote_text, quote_amount)
        end as quote_decimals,
        case
            when quote_rule = 'leg rounded' then decimals_as_sent(base_text, base_amount)
        end as base_decimals,
        decimals_as_sent(fee_text, abs(fee)) as fee_decimals
    from texts
),

-- every amount as its whole part and the halves of its fraction (`decimal_parts`)
parts as (
    select
        *,
        decimal_parts(abs(base_amount)) as base_parts,
        decimal_parts(abs(price)) as price_parts,
        decimal_parts(abs(quote_amount)) as quote_parts,
        sign(schedule_rate) as rate_sign,
        decimal_parts(abs(schedule_rate)) as rate_parts,
        sign(fee) as fee_sign,
        decimal_parts(abs(fee)) as fee_parts
    from decimals
),

products as (
    select
        *,
        exact_product(base_parts, price_parts) as computed,
        exact_product(quote_parts, rate_parts) as allowed,
        decimal_units_of_text(abs(fee)) as fee_units,
        nullif(decimal_units_of_text(abs(quote_amount)), 0) as quote_units,
        decimal_units_of_text(abs(price)) as price_units
    from parts
),

amounts as (
    select
        *,
        units_to_decimal(exact_round(computed)) as computed_quote,
        computed['rest'] = 0 as computed_exact,
        units_to_decimal(rate_sign * exact_round(allowed)) as allowed_fee,
        -- fee / quote to 12 decimals, half away from zero (one 128-bit division; null for a
        -- fee of 5·10^7 or more, whose units times 2·10^12 would not fit)
        case when fee_parts['whole'] < 50000000 then (
            fee_sign * rounded_quotient(fee_units * 1000000000000, quote_units)
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
            else abs(quote_difference) < units_to_decimal(
                (price_units + ('1' || repeat('0', base_decimals))::hugeint - 1)
                // ('1' || repeat('0', base_decimals))::hugeint
            )
        end as quote_ok,
        case
            when fee_unchecked then 'not_applicable'
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
