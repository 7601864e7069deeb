-- fills: every fill of both accounts in one shape, once. Amounts are unsigned (side says which
-- way they moved); fee is in fee_asset, negative for a rebate, null while a Bitvavo fill is
-- unsettled; source is the endpoint the row came from. Bitvavo app ("Price Guarantee") trades
-- come from account/history: the sync lands there only the history trades that match no
-- /v2/trades fills by market, side, time and amounts (bitvavo_history_matches holds the
-- others). Should one fill id still come from both, the /v2/trades row is kept.
with staged as (
    select * from staging.fills
),

-- the fills one id of which came from more than one source (rare): the order-book row wins
several as (
    select exchange, account, market, fill_id
    from staged
    group by all
    having count(*) > 1
),

chosen as (
    select * from staged
    anti join several using (exchange, account, market, fill_id)
    union all
    select * from staged
    semi join several using (exchange, account, market, fill_id)
    qualify row_number() over (
        partition by exchange, account, market, fill_id
        order by (source = 'trades') desc, fetched_at desc, filename desc
    ) = 1
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
    from chosen
)

select * from final
