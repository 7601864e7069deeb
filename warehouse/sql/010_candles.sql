-- candles: one row per (exchange, market, interval, open_time), the newest fetch winning.
-- close_time is the end of the candle's interval. Bitstamp fills hours without trades with
-- zero-volume candles (kept as sent); Bitvavo leaves them out.
with intervals (interval, seconds) as (
    values
        ('1m', 60), ('3m', 180), ('5m', 300), ('15m', 900), ('30m', 1800),
        ('1h', 3600), ('2h', 7200), ('4h', 14400), ('6h', 21600), ('8h', 28800),
        ('12h', 43200), ('1d', 86400), ('3d', 259200)
),

final as (
    select
        candles.exchange,
        candles.market,
        candles.interval,
        candles.open_time,
        candles.open_time + to_seconds(intervals.seconds) as close_time,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        candles.fetched_at
    from staging.candles as candles
    left join intervals on intervals.interval = candles.interval
)

select * from final
