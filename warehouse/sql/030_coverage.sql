-- coverage: per stream, what the lake holds and every gap in it, with its reason.
-- One row per gap; a stream without gaps has one row whose gap columns are null.
-- Gaps are (a) ranges a stream recorded in the gaps dataset with their reason (Bitstamp public
-- trades older than the rolling window, lost for good; the range before a pair's listing where
-- a candle stream starts, recorded as stream 'candles <interval>'), (b) holes between the
-- landed windows of a candles/public-trades partition (read from the file stems: not fetched
-- yet, or a window that failed), and (c) Bitstamp candles missing inside landed data
-- (Bitstamp fills hours without trades, so a missing candle is missing data). Hours without a
-- Bitvavo candle are hours without trades: not gaps.
-- A file moved to the quarantine (it could not be read) is a row of its own, gap_status
-- 'quarantined', with the window it covered (from its name, else the times of the rows it held
-- when last verified), the reader's error and what happens next, until the lake covers it again;
-- the holes it leaves between windows are not listed a second time. Other gaps are 'gap'.
with candle_files as (
    select file, 'candles' as dataset
    from glob('{lake}/candles/*/*/*/*.parquet')
),

trade_files as (
    select file, 'public_trades' as dataset
    from glob('{lake}/public_trades/*/*/*.parquet')
),

window_files as (
    select
        dataset,
        regexp_extract(file, '/exchange=([^/]+)/', 1) as exchange,
        regexp_extract(file, '/market=([^/]+)/', 1) as market,
        nullif(regexp_extract(file, '/interval=([^/]+)/', 1), '') as interval,
        regexp_extract(file, '/(\d{8}T\d{6})-(\d{8}T\d{6})\.parquet$', 1) as start_text,
        regexp_extract(file, '/(\d{8}T\d{6})-(\d{8}T\d{6})\.parquet$', 2) as end_text
    from (select * from candle_files union all select * from trade_files)
),

windows as (
    select
        dataset,
        exchange,
        market,
        interval,
        strptime(start_text || '+0000', '%Y%m%dT%H%M%S%z') as window_start,
        strptime(end_text || '+0000', '%Y%m%dT%H%M%S%z') as window_end
    from window_files
    where start_text <> ''
),

covered as (
    select
        dataset,
        exchange,
        market,
        interval,
        count(*) as windows,
        min(window_start) as covered_from,
        max(window_end) as covered_to
    from windows
    group by dataset, exchange, market, interval
),

window_holes as (
    select
        dataset,
        exchange,
        market,
        interval,
        covered_until as gap_start,
        window_start as gap_end,
        'no landed window covers this range (not fetched yet, or its window failed)' as reason
    from (
        select
            *,
            max(window_end) over (
                partition by dataset, exchange, market, interval
                order by window_start, window_end
                rows between unbounded preceding and 1 preceding
            ) as covered_until
        from windows
    )
    where covered_until < window_start
),

recorded_gaps as (
    select
        split_part(stream, ' ', 1) as dataset,
        exchange,
        market,
        nullif(split_part(stream, ' ', 2), '') as interval,
        gap_start,
        gap_end,
        reason
    from staging.gaps
),

quarantined as (
    select * from staging.quarantined_files_landed where restored_at is null
),

quiet_hour_candle_holes as (
    select
        'candles' as dataset,
        exchange,
        market,
        interval,
        close_time as gap_start,
        next_open_time as gap_end,
        exchange || ' candles missing inside landed data (' || exchange
            || ' fills hours without trades)' as reason
    from (
        select
            *,
            lead(open_time) over (
                partition by exchange, market, interval order by open_time
            ) as next_open_time
        from candles
        where exchange in (
            select exchange from staging.exchange_rules where candles_skip_quiet_hours
        )
    )
    where next_open_time > close_time
),

holes as (
    select * from window_holes as hole
    where not exists (
        select 1 from recorded_gaps as recorded
        where recorded.dataset = hole.dataset
            and recorded.exchange = hole.exchange
            and recorded.market = hole.market
            and (recorded.interval is null or recorded.interval = hole.interval)
            and ranges_overlap(recorded.gap_start, recorded.gap_end, hole.gap_start, hole.gap_end)
    )
    union all
    select * from quiet_hour_candle_holes as hole
    where not exists (
        select 1 from window_holes as window_hole
        where window_hole.dataset = hole.dataset
            and window_hole.exchange = hole.exchange
            and window_hole.market = hole.market
            and window_hole.interval = hole.interval
            and ranges_overlap(
                window_hole.gap_start, window_hole.gap_end, hole.gap_start, hole.gap_end
            )
    )
),

gaps as (
    select * from recorded_gaps
    union all
    select * from holes as hole
    where not exists (
        select 1 from quarantined
        where quarantined.dataset = hole.dataset
            and quarantined.exchange = hole.exchange
            and quarantined.market = hole.market
            and quarantined.interval is not distinct from hole.interval
            and ranges_overlap(
                quarantined.window_start, quarantined.window_end, hole.gap_start, hole.gap_end
            )
    )
),

candle_streams as (
    select
        'candles' as dataset,
        exchange,
        market,
        interval,
        null::varchar as source,
        count(*) as rows,
        min(open_time) as first_at,
        max(open_time) as last_at,
        max(fetched_at) as last_fetched_at
    from candles
    group by exchange, market, interval
),

trade_streams as (
    select
        'public_trades' as dataset,
        exchange,
        market,
        null::varchar as interval,
        null::varchar as source,
        count(*) as rows,
        min(traded_at) as first_at,
        max(traded_at) as last_at,
        max(fetched_at) as last_fetched_at
    from public_trades
    group by exchange, market
),

account_rows as (
    select 'fills' as dataset, exchange, source, executed_at as moment, fetched_at
    from staging.fills_landed
    union all
    select 'transfers', exchange, source, executed_at, fetched_at
    from staging.transfers_landed
    union all
    select 'other_events', exchange, source, executed_at, fetched_at
    from staging.other_events_landed
    union all
    select
        'bitstamp_ledger',
        (select exchange from staging.exchange_rules where raw_ledger = 'bitstamp_ledger'),
        source,
        executed_at,
        fetched_at
    from staging.bitstamp_ledger_landed
    union all
    select
        'bitvavo_history',
        (select exchange from staging.exchange_rules where raw_ledger = 'bitvavo_history'),
        source,
        executed_at,
        fetched_at
    from staging.bitvavo_history_landed
    union all
    select 'balance_snapshots', exchange, 'balance', taken_at, fetched_at
    from staging.balance_snapshots_landed
),

account_streams as (
    select
        dataset,
        exchange,
        null::varchar as market,
        null::varchar as interval,
        source,
        count(*) as rows,
        min(moment) as first_at,
        max(moment) as last_at,
        max(fetched_at) as last_fetched_at
    from account_rows
    group by dataset, exchange, source
),

landed_streams as (
    select * from candle_streams
    union all
    select * from trade_streams
    union all
    select * from account_streams
),

-- a partition whose windows are all empty (fetched, nothing there), or a stream that has only
-- recorded a gap, is a stream too
bare_streams as (
    select dataset, exchange, market, interval from covered
    union
    select dataset, exchange, market, interval from recorded_gaps
),

streams as (
    select * from landed_streams
    union all
    select
        bare_streams.dataset,
        bare_streams.exchange,
        bare_streams.market,
        bare_streams.interval,
        null::varchar as source,
        0 as rows,
        null::timestamptz as first_at,
        null::timestamptz as last_at,
        null::timestamptz as last_fetched_at
    from bare_streams
    where not exists (
        select 1 from landed_streams
        where landed_streams.dataset = bare_streams.dataset
            and landed_streams.exchange = bare_streams.exchange
            and landed_streams.market is not distinct from bare_streams.market
            and landed_streams.interval is not distinct from bare_streams.interval
    )
),

final as (
    select
        concat_ws(
            ' ', streams.dataset, streams.exchange, streams.market, streams.interval,
            streams.source
        ) as stream,
        streams.dataset,
        streams.exchange,
        streams.market,
        streams.interval,
        streams.source,
        streams.rows,
        streams.first_at,
        streams.last_at,
        covered.windows,
        covered.covered_from,
        covered.covered_to,
        streams.last_fetched_at,
        gaps.gap_start,
        gaps.gap_end,
        gaps.reason as gap_reason,
        case when gaps.gap_start is not null then 'gap' end as gap_status,
        null::varchar as file
    from streams
    left join covered
        on covered.dataset = streams.dataset
        and covered.exchange = streams.exchange
        and covered.market = streams.market
        and covered.interval is not distinct from streams.interval
    left join gaps
        on gaps.dataset = streams.dataset
        and gaps.exchange = streams.exchange
        and gaps.market is not distinct from streams.market
        and (gaps.interval is null or gaps.interval = streams.interval)
),

quarantined_rows as (
    select
        concat_ws(' ', dataset, exchange, market, interval) as stream,
        dataset,
        exchange,
        market,
        interval,
        null::varchar as source,
        null::bigint as rows,
        null::timestamptz as first_at,
        null::timestamptz as last_at,
        null::bigint as windows,
        null::timestamptz as covered_from,
        null::timestamptz as covered_to,
        null::timestamptz as last_fetched_at,
        coalesce(window_start, first_at) as gap_start,
        coalesce(window_end, last_at) as gap_end,
        'quarantined: ' || reason
            || coalesce('; it held ' || quarantined.rows || ' rows when last verified', '')
            || '; ' || refetch as gap_reason,
        'quarantined' as gap_status,
        path as file
    from quarantined
)

select * from final
union all
select * from quarantined_rows
order by stream, gap_start
