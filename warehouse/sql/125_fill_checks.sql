-- fill_checks: every fill of `fills` with the verdicts of its five checks, each its own model:
--   quote      fill_check_quote: quote_amount against base_amount × price (quote_ok);
--   fee        fill_check_fee: the fee against the fee schedule (fee_check 'above_schedule'
--              fails it);
--   duplicate  fill_check_duplicate: more than one landed row for the fill;
--   orphan     fill_check_orphan: the row its balance movement comes from is missing;
--   history    fill_check_history: an account/history item fits it ambiguously, or by id alone.
-- status is 'ok' when no check failed, else 'problem', and problems names the failed checks
-- ('quote', 'fee', 'duplicate', 'orphan', 'history'); a check that cannot be judged (null) is
-- not a failure. Each check's model says what its columns mean.
with joined as (
    select
        fills.*,
        quote.* exclude (exchange, account, market, fill_id),
        fee.* exclude (exchange, account, market, fill_id),
        duplicate.* exclude (exchange, account, market, fill_id),
        orphan.orphan,
        history.history_items,
        history.history_problem
    from fills
    left join fill_check_quote as quote using (exchange, account, market, fill_id)
    left join fill_check_fee as fee using (exchange, account, market, fill_id)
    left join fill_check_duplicate as duplicate using (exchange, account, market, fill_id)
    left join fill_check_orphan as orphan using (exchange, account, market, fill_id)
    left join fill_check_history as history using (exchange, account, market, fill_id)
),

final as (
    select
        exchange, account, market, fill_id,  -- the fill's key
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
        quote_decimals,
        quote_ok,
        fee,
        fee_asset,
        effective_rate,
        schedule_rate,
        schedule_taken_at,
        schedule_in_force,
        allowed_fee,
        fee_check,
        landed_copies,
        landed_sources,
        duplicate,
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
    from joined
)

select * from final
