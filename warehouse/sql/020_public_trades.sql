-- public_trades: one row per (exchange, market, trade_id), the newest fetch winning.
-- side is the taker's side.
with source as (
    select *
    from read_parquet(
        '{lake}/public_trades/*/*/*.parquet',
        hive_partitioning=true, union_by_name=true, filename=true
    )
),

renamed as (
    select
        source.exchange::varchar as exchange,
        source.market::varchar as market,
        source.trade_id,
        source.traded_at,
        source.price,
        source.amount,
        source.side,
        source.fetched_at,
        source.filename
    from source
),

final as (
    select
        exchange,
        market,
        trade_id,
        traded_at,
        price,
        amount,
        side,
        fetched_at
    from renamed
    qualify row_number() over (
        partition by exchange, market, trade_id
        order by fetched_at desc, filename desc
    ) = 1
)

select * from final
