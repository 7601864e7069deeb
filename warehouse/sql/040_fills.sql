-- fills: every fill of both accounts in one shape, once. Amounts are unsigned (side says which
-- way they moved); fee is in fee_asset, negative for a rebate, null while a Bitvavo fill is
-- unsettled; source is the endpoint the row came from. Bitvavo app ("Price Guarantee") trades
-- come from account/history: the sync lands there only the history trades that match no
-- /v2/trades fills by market, side, time and amounts (bitvavo_history_matches holds the
-- others). Should one fill id still come from both, the /v2/trades row is kept.
with final as (
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
    from staging.fills
    -- one row per (exchange, account, market, fill_id), whatever the sources
    qualify row_number() over (
        partition by exchange, account, market, fill_id
        order by (source = 'trades') desc, fetched_at desc, filename desc
    ) = 1
)

select * from final
