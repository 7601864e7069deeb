-- fill_check_duplicate: per fill of `fills`, how many rows landed for it. landed_copies counts
-- the landed rows (every file and source) with the fill's (exchange, account, market, fill_id),
-- landed_sources their sources when more than one; more than one is a duplicate (overlapping
-- files, or one fill landed by two listings).
with fill_source as (
    select * from staging.fills_landed
),

copies as (
    select exchange, account, market, fill_id, count(*) as landed_copies
    from fill_source
    group by all
),

-- the sources of each fill landed more than once (aggregated over those fills only)
copy_sources as (
    select
        exchange,
        account,
        market,
        fill_id,
        string_agg(distinct source, ', ' order by source) as landed_sources
    from fill_source
    semi join (select * from copies where landed_copies > 1) as copied
        using (exchange, account, market, fill_id)
    group by all
),

final as (
    select
        fills.exchange, fills.account, fills.market, fills.fill_id,  -- the fill's key
        coalesce(copies.landed_copies, 0) as landed_copies,
        copy_sources.landed_sources,
        coalesce(copies.landed_copies, 0) > 1 as duplicate
    from fills
    left join copies using (exchange, account, market, fill_id)
    left join copy_sources using (exchange, account, market, fill_id)
)

select * from final
