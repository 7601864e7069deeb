-- public_trades: one row per (exchange, market, trade_id), the newest fetch winning.
-- side is the taker's side.
with final as (
    select exchange, market, trade_id, traded_at, price, amount, side, fetched_at
    from staging.public_trades
)

select * from final
