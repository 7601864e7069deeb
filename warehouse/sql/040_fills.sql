-- fills: every fill of both accounts in one shape, once. Amounts are unsigned (side says which
-- way they moved); fee is in fee_asset, negative for a rebate, null while a Bitvavo fill is
-- unsettled; source is the endpoint the row came from. Bitvavo app ("Price Guarantee") trades
-- come from account/history; an account/history row that is also an order-book fill from
-- /v2/trades (same fill id) is dropped in favour of the /v2/trades row.
with source as (
    select *
    from read_parquet(
        '{lake}/fills/*/*/*.parquet',
        hive_partitioning=true, union_by_name=true, filename=true
    )
),

renamed as (
    select
        source.exchange::varchar as exchange,
        source.account::varchar as account,
        source.market,
        source.base_asset,
        source.quote_asset,
        source.side,
        source.base_amount,
        source.quote_amount,
        source.price,
        source.fee,
        source.fee_asset,
        source.order_id,
        source.fill_id,
        source.taker,
        source.executed_at,
        source.source,
        source.settled,
        source.fetched_at,
        source.filename
    from source
),

deduplicated as (
    select *
    from renamed
    qualify row_number() over (
        partition by exchange, account, source, market, fill_id
        order by fetched_at desc, filename desc
    ) = 1
),

order_book as (
    select exchange, account, fill_id
    from deduplicated
    where exchange = 'bitvavo' and source = 'trades'
),

app_trades_only as (
    select *
    from deduplicated
    where not (
        exchange = 'bitvavo'
        and source = 'account/history'
        and exists (
            select 1 from order_book
            where order_book.exchange = deduplicated.exchange
                and order_book.account = deduplicated.account
                and order_book.fill_id = deduplicated.fill_id
        )
    )
),

final as (
    select
        exchange,
        account,
        market,
        base_asset,
        quote_asset,
        side,
        base_amount,
        quote_amount,
        price,
        fee,
        fee_asset,
        order_id,
        fill_id,
        taker,
        executed_at,
        source,
        settled
    from app_trades_only
    -- one row per (exchange, account, market, fill_id), whatever the sources
    qualify row_number() over (
        partition by exchange, account, market, fill_id
        order by (source = 'trades') desc, fetched_at desc, filename desc
    ) = 1
)

select * from final
