-- fill_check_orphan: per fill of `fills`, whether the row its balance movement comes from is
-- missing (orphan true): a Bitstamp fill without its user_transactions row in bitstamp_ledger
-- (the ledger, so the balances, lack it), or a settled Bitvavo /v2/trades fill that no landed
-- account/history item (which lists every balance change) is matched to (lost, or listed after
-- the history was read: the next sync lists it; fill_check_history says which items match).
-- App trades come from account/history; unsettled fills, and fills only an ambiguous item
-- fits, are not judged (null).
with ledger_rows as (
    select distinct rules.exchange, account, entry_id::varchar as id
    from staging.bitstamp_ledger_landed
    inner join staging.exchange_rules as rules on rules.raw_ledger = 'bitstamp_ledger'
),

final as (
    select
        fills.exchange, fills.account, fills.market, fills.fill_id,  -- the fill's key
        case
            when rules.raw_ledger_is_balance_ledger then ledger_rows.id is null
            when fills.source = 'account/history' then false
            when not rules.raw_ledger_is_balance_ledger and fills.settled then case
                when history.history_matched then false
                when not history.history_linked then true
            end
        end as orphan
    from fills
    left join ledger_rows
        on ledger_rows.exchange = fills.exchange
        and ledger_rows.account = fills.account
        and ledger_rows.id = fills.fill_id
    left join fill_check_history as history
        on history.exchange = fills.exchange
        and history.account = fills.account
        and history.market = fills.market
        and history.fill_id = fills.fill_id
    left join staging.exchange_rules as rules on rules.exchange = fills.exchange
)

select * from final
