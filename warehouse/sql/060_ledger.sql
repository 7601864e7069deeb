-- ledger: every balance movement of both accounts, one row per asset moved, amount signed
-- (positive credits the account). Replaying it per (exchange, account, asset) gives the balance.
--   kind: trade_base, trade_quote, fee, deposit, deposit_fee, withdrawal, withdrawal_fee,
--         reward, staking, conversion, internal_transfer, settlement, derivatives,
--         withdrawal_cancelled, unknown (a type nobody knows yet: kept, never dropped)
--   reference: the id of the source row (Bitstamp ledger id, fill id, transfer id, event id);
--   event_kind / event_type: the source row's normalised kind and the exchange's own type.
-- Bitstamp: the user_transactions ledger itself (docs/exchanges.md, "Bitstamp: ledger
-- identity"): every currency column is a movement; the fee is charged on top of trades (in the
-- quote) and deposits, and is already inside a withdrawal's amount, which is split into
-- withdrawal (on chain) and withdrawal_fee so that the two add up to the row's amount.
-- A fee whose asset the source does not say is booked in asset '?' (it then cannot reconcile).
-- Bitvavo: fills (both legs; the fee in its own asset once settled, a negative fee is a rebate),
-- transfers (deposit +amount - fee; a withdrawal moves its balance_change from transfers, split
-- into the on-chain leg and the fee, whether or not the fee was inside its amount), and the
-- other account/history events (rewards…) with their fee. A transfer listed by both
-- depositHistory/withdrawalHistory and account/history is counted once (see transfers).
with kinds (source_kind, ledger_kind) as (
    values
        ('staking_reward', 'reward'),
        ('referral_reward', 'reward'),
        ('distribution', 'reward'),
        ('staking_credit', 'staking'),
        ('staking_debit', 'staking'),
        ('conversion', 'conversion'),
        ('dust_writeoff', 'conversion'),
        ('fee_rebate', 'fee'),
        ('internal_transfer', 'internal_transfer'),
        ('settlement', 'settlement'),
        ('derivatives', 'derivatives'),
        ('withdrawal_cancelled', 'withdrawal_cancelled'),
        ('deposit', 'deposit'),
        ('withdrawal', 'withdrawal')
),

-- the exchange whose balance ledger is its raw ledger `bitstamp_ledger`
bitstamp_ledger_exchange as (
    select exchange from staging.exchange_rules
    where raw_ledger = 'bitstamp_ledger' and raw_ledger_is_balance_ledger
),

-- the exchanges whose ledger is assembled from fills, transfers and other events
assembled as (
    select exchange from staging.exchange_rules where not raw_ledger_is_balance_ledger
),

bitstamp_entries as (
    select
        account,
        entry_id,
        type_code,
        kind as event_kind,
        executed_at,
        movements,
        fee,
        fee_asset,
        pair,
        source
    from staging.bitstamp_ledger
),

bitstamp_movements as (
    select
        bitstamp_entries.*,
        movement.asset as asset,
        movement.amount as moved,
        -- a withdrawal's fee is inside its amount: split out when it is in the moved asset
        bitstamp_entries.event_kind = 'withdrawal'
        and bitstamp_entries.fee_asset = movement.asset
        and coalesce(bitstamp_entries.fee, 0) <> 0 as fee_split
    from bitstamp_entries, unnest(bitstamp_entries.movements) as moves(movement)
),

bitstamp_legs as (
    select
        (select exchange from bitstamp_ledger_exchange) as exchange,
        bitstamp_movements.account,
        bitstamp_movements.asset,
        case
            when fee_split then moved + fee
            else moved
        end as amount,
        case
            when event_kind = 'trade' and asset = split_part(pair, '-', 1) then 'trade_base'
            when event_kind = 'trade' then 'trade_quote'
            else coalesce(kinds.ledger_kind, 'unknown')
        end as kind,
        bitstamp_movements.executed_at,
        entry_id::varchar as reference,
        bitstamp_movements.source,
        bitstamp_movements.event_kind,
        type_code as event_type,
        case when event_kind = 'trade' then pair end as market,
        entry_id as sequence,
        case when event_kind = 'trade' and asset <> split_part(pair, '-', 1) then 2 else 1 end
            as leg
    from bitstamp_movements
    left join kinds on kinds.source_kind = bitstamp_movements.event_kind
),

bitvavo_fills as (
    select * from fills where exchange in (select exchange from assembled)
),

-- both legs of a fill (the fee is among the charges below)
bitvavo_fill_legs as (
    select
        exchange,
        account,
        base_asset as asset,
        case side when 'buy' then base_amount else -base_amount end as amount,
        'trade_base' as kind,
        executed_at,
        fill_id as reference,
        source,
        'trade' as event_kind,
        side as event_type,
        market,
        null::bigint as sequence,
        1 as leg
    from bitvavo_fills
    union all
    select
        exchange,
        account,
        quote_asset,
        case side when 'buy' then -quote_amount else quote_amount end,
        'trade_quote',
        executed_at,
        fill_id,
        source,
        'trade',
        side,
        market,
        null::bigint,
        2
    from bitvavo_fills
),

bitvavo_transfers as (
    select * from transfers
    where exchange in (select exchange from assembled) and in_ledger
),

bitvavo_transfer_legs as (
    select
        exchange,
        account,
        asset,
        -- a withdrawal's on-chain leg: what left the balance, less a fee that is its own leg
        case kind
            when 'deposit' then amount
            else balance_change + own_fee(fee, fee_asset, asset)
        end as amount,
        kind,
        executed_at,
        transfer_id as reference,
        source,
        kind as event_kind,
        kind as event_type,
        null::varchar as market,
        null::bigint as sequence,
        1 as leg
    from bitvavo_transfers
),

bitvavo_events as (
    select
        exchange,
        account,
        event_id,
        event_type,
        kind as event_kind,
        movements,
        fee,
        fee_asset,
        executed_at,
        source
    from staging.other_events
    where exchange in (select exchange from assembled)
),

bitvavo_event_movements as (
    select
        bitvavo_events.*,
        movement.asset as asset,
        movement.amount as moved
    from bitvavo_events, unnest(bitvavo_events.movements) as moves(movement)
),

bitvavo_event_legs as (
    select
        bitvavo_event_movements.exchange,
        bitvavo_event_movements.account,
        bitvavo_event_movements.asset,
        bitvavo_event_movements.moved as amount,
        coalesce(kinds.ledger_kind, 'unknown') as kind,
        bitvavo_event_movements.executed_at,
        bitvavo_event_movements.event_id as reference,
        bitvavo_event_movements.source,
        bitvavo_event_movements.event_kind,
        bitvavo_event_movements.event_type,
        null::varchar as market,
        null::bigint as sequence,
        1 as leg
    from bitvavo_event_movements
    left join kinds on kinds.source_kind = bitvavo_event_movements.event_kind
),

-- every fee charged (Bitstamp ledger rows, Bitvavo fills, transfers and events), a leg of its
-- own; a fee whose asset the source does not say is booked in asset '?'
charges as (
    select
        (select exchange from bitstamp_ledger_exchange) as exchange,
        account,
        coalesce(fee_asset, '?') as asset,
        -fee as amount,
        case event_kind
            when 'deposit' then 'deposit_fee'
            when 'withdrawal' then 'withdrawal_fee'
            else 'fee'
        end as kind,
        executed_at,
        entry_id::varchar as reference,
        source,
        event_kind,
        type_code as event_type,
        case when event_kind = 'trade' then pair end as market,
        entry_id as sequence
    from bitstamp_entries
    -- a withdrawal's fee is a leg of its own only where its amount was split above
    where event_kind <> 'withdrawal'
        or exists (
            select 1 from bitstamp_movements
            where bitstamp_movements.account = bitstamp_entries.account
                and bitstamp_movements.entry_id = bitstamp_entries.entry_id
                and bitstamp_movements.fee_split
        )
    union all
    select exchange, account, coalesce(fee_asset, '?'), -fee, 'fee', executed_at, fill_id, source,
        'trade', side, market, null
    from bitvavo_fills
    union all
    select exchange, account, coalesce(fee_asset, asset), -fee, kind || '_fee', executed_at,
        transfer_id, source, kind, kind, null, null
    from bitvavo_transfers
    union all
    select exchange, account, coalesce(fee_asset, '?'), -fee, 'fee', executed_at, event_id,
        source, event_kind, event_type, null, null
    from bitvavo_events
),

fee_legs as (
    select *, 3 as leg from charges where coalesce(amount, 0) <> 0
),

final as (
    select
        exchange,
        account,
        asset,
        amount::decimal(38, 18) as amount,
        kind,
        executed_at,
        reference,
        source,
        event_kind,
        event_type,
        market,
        sequence,
        leg
    from (
        select * from bitstamp_legs
        union all
        select * from fee_legs
        union all
        select * from bitvavo_fill_legs
        union all
        select * from bitvavo_transfer_legs
        union all
        select * from bitvavo_event_legs
    )
)

select * from final
