-- candles: one row per (exchange, market, interval, open_time), the newest fetch winning.
-- close_time is the end of the candle's interval. Bitstamp fills hours without trades with
-- zero-volume candles (kept as sent); Bitvavo leaves them out.
with source as (
    select *
    from read_parquet(
        '{lake}/candles/*/*/*/*.parquet',
        hive_partitioning=true, union_by_name=true, filename=true
    )
),

intervals (interval, seconds) as (
    values
        ('1m', 60), ('3m', 180), ('5m', 300), ('15m', 900), ('30m', 1800),
        ('1h', 3600), ('2h', 7200), ('4h', 14400), ('6h', 21600), ('8h', 28800),
        ('12h', 43200), ('1d', 86400), ('3d', 259200)
),

renamed as (
    select
        source.exchange::varchar as exchange,
        source.market::varchar as market,
        source.interval::varchar as interval,
        source.open_time,
        source.open,
        source.high,
        source.low,
        source.close,
        source.volume,
        source.fetched_at,
        source.filename
    from source
),

deduplicated as (
    select *
    from renamed
    qualify row_number() over (
        partition by exchange, market, interval, open_time
        order by fetched_at desc, filename desc
    ) = 1
),

final as (
    select
        deduplicated.exchange,
        deduplicated.market,
        deduplicated.interval,
        deduplicated.open_time,
        deduplicated.open_time + to_seconds(intervals.seconds) as close_time,
        deduplicated.open,
        deduplicated.high,
        deduplicated.low,
        deduplicated.close,
        deduplicated.volume,
        deduplicated.fetched_at
    from deduplicated
    left join intervals on intervals.interval = deduplicated.interval
)

select * from final
