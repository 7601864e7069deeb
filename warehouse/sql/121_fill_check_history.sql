-- fill_check_history: per fill of `fills`, the landed account/history items matched to it
-- (bitvavo_history_matches, written by the sync: by market, side, time and amounts, per fill or
-- per order, not by id). history_linked: some landed item names the fill; history_matched: an
-- item is matched to it (null when none names it); history_items lists the items matched; history_problem says which item fits it ambiguously
-- (it fits several sets of fills equally, or only fills already matched to another item), or
-- was matched to it by id alone, and why. A problem fails the check.
with history_rows as (
    select distinct rules.exchange, account, transaction_id as id
    from staging.bitvavo_history_landed
    inner join staging.exchange_rules as rules on rules.raw_ledger = 'bitvavo_history'
),

match_source as (
    select * from staging.bitvavo_history_matches_landed
),

history_pairs as (
    select
        history_rows.exchange,
        history_rows.account,
        match_source.market,
        match_source.fill_id,
        match_source.transaction_id,
        match_source.status,
        match_source.problem
    from match_source
    inner join history_rows
        on history_rows.account = match_source.account
        and history_rows.id = match_source.transaction_id
),

-- (most fills have one item: its values are the aggregates, which are computed for the others
-- only)
history_counts as (
    select
        exchange,
        account,
        market,
        fill_id,
        count(*) as pairs,
        bool_or(status = 'matched') as history_matched,
        any_value(case when status = 'matched' then transaction_id end) as history_items,
        any_value(problem) as history_problem
    from history_pairs
    group by all
),

history_links as (
    select * exclude (pairs) from history_counts where pairs = 1
    union all
    select
        exchange,
        account,
        market,
        fill_id,
        bool_or(status = 'matched') as history_matched,
        string_agg(distinct transaction_id, ', ' order by transaction_id)
            filter (where status = 'matched') as history_items,
        string_agg(distinct problem, '; ' order by problem) as history_problem
    from history_pairs
    semi join (select * from history_counts where pairs > 1) as several
        using (exchange, account, market, fill_id)
    group by all
),

final as (
    select
        fills.exchange, fills.account, fills.market, fills.fill_id,  -- the fill's key
        history_links.fill_id is not null as history_linked,
        history_links.history_matched,
        history_links.history_items,
        history_links.history_problem
    from fills
    left join history_links using (exchange, account, market, fill_id)
)

select * from final
