-- transfers: every deposit and withdrawal of both accounts, once, with what is known of it.
-- The balance-moving listing is primary: Bitstamp user_transactions rows, Bitvavo
-- depositHistory / withdrawalHistory rows. The other listing of the same transfer (Bitstamp
-- crypto-transactions: txid, address; Bitvavo account/history: its transaction id) is matched to
-- it on account, kind, asset and amount (Bitstamp withdrawals: on chain = amount - fee) within
-- one hour, nearest first, one to one. A Bitvavo account/history transfer without a match still
-- moved the balance and is kept as its own row; an unmatched Bitstamp crypto-transactions row is
-- kept for inspection but does not move the balance (in_ledger false: the ledger is complete).
-- amount is unsigned as the exchange reports it; fee_in_amount says whether a withdrawal's fee
-- is inside its amount (Bitstamp: always, per the recorded ledger identity; Bitvavo: unproven,
-- so decided from the account's own data: where the other account received a Bitvavo
-- withdrawal with the same txid, amount − fee arriving means inside, amount arriving means
-- outside; with no such evidence, outside, as the documentation's example suggests); fee_basis
-- says which of these decided it. A Bitvavo account/history withdrawal is matched to its
-- withdrawalHistory row whether or not the two agree on where the fee is.
-- balance_change is the signed effect on the balance of asset.
with deduplicated as (
    select
        *,
        {'exchange': exchange, 'account': account, 'source': source, 'transfer_id': transfer_id}
            as transfer_key
    from staging.transfers
),

primary_rows as (
    select deduplicated.*
    from deduplicated
    inner join staging.exchange_rules as rules using (exchange)
    where case
        when rules.primary_transfer_sources is null
            then not list_contains(rules.secondary_transfer_sources, deduplicated.source)
        else list_contains(rules.primary_transfer_sources, deduplicated.source)
    end
),

secondary_rows as (
    select deduplicated.*
    from deduplicated
    inner join staging.exchange_rules as rules using (exchange)
    where list_contains(rules.secondary_transfer_sources, deduplicated.source)
),

candidates as (
    select
        primary_rows.transfer_key as primary_key,
        secondary_rows.transfer_key as secondary_key,
        abs(epoch_ms(secondary_rows.executed_at) - epoch_ms(primary_rows.executed_at))
            as ms_apart,
        -- an equal amount is the better match; the fee may sit inside one listing's amount
        -- and outside the other's (Bitstamp always; Bitvavo's two listings are not proven to
        -- agree on it)
        (secondary_rows.amount <> primary_rows.amount)::integer as amount_apart
    from primary_rows
    inner join staging.exchange_rules as rules on rules.exchange = primary_rows.exchange
    inner join secondary_rows
        on secondary_rows.exchange = primary_rows.exchange
        and secondary_rows.account = primary_rows.account
        and secondary_rows.kind = primary_rows.kind
        and secondary_rows.asset = primary_rows.asset
        and (
            secondary_rows.amount = primary_rows.amount
            or (
                rules.secondary_net_of_fee
                and secondary_rows.amount = primary_rows.amount - coalesce(primary_rows.fee, 0)
            )
            or (
                rules.secondary_withdrawal_fee_either_side
                and primary_rows.kind = 'withdrawal'
                and coalesce(primary_rows.fee, 0) <> 0
                and secondary_rows.amount in (
                    primary_rows.amount - primary_rows.fee, primary_rows.amount + primary_rows.fee
                )
            )
        )
        and within(
            secondary_rows.executed_at, primary_rows.executed_at, interval 1 hour, interval 1 hour
        )
),

matches as (
    select *
    from candidates
    qualify row_number() over (
        partition by primary_key order by amount_apart, ms_apart, secondary_key.transfer_id
    ) = 1
    and row_number() over (
        partition by secondary_key order by amount_apart, ms_apart, primary_key.transfer_id
    ) = 1
),

matched_primaries as (
    select
        primary_rows.exchange,
        primary_rows.account,
        primary_rows.transfer_id,
        primary_rows.kind,
        primary_rows.asset,
        primary_rows.amount,
        primary_rows.fee,
        primary_rows.fee_asset,
        coalesce(primary_rows.address, secondary_rows.address) as address,
        coalesce(primary_rows.txid, secondary_rows.txid) as txid,
        coalesce(primary_rows.network, secondary_rows.network) as network,
        primary_rows.status,
        primary_rows.executed_at,
        primary_rows.source,
        matches.secondary_key.transfer_id as matched_id,
        matches.secondary_key.source as matched_source,
        true as in_ledger
    from primary_rows
    left join matches on matches.primary_key = primary_rows.transfer_key
    left join secondary_rows on secondary_rows.transfer_key = matches.secondary_key
),

unmatched_secondaries as (
    select
        exchange,
        account,
        transfer_id,
        kind,
        asset,
        amount,
        fee,
        fee_asset,
        address,
        txid,
        network,
        status,
        executed_at,
        source,
        null::varchar as matched_id,
        null::varchar as matched_source,
        (
            select rules.unmatched_secondary_in_ledger from staging.exchange_rules as rules
            where rules.exchange = secondary_rows.exchange
        ) as in_ledger
    from secondary_rows
    where transfer_key not in (select secondary_key from matches)
),

withdrawal_fee_evidence as (
    -- what arrived on the other account with the same txid, per account of an exchange whose
    -- withdrawal fee is not recorded
    select
        withdrawals.exchange,
        withdrawals.account,
        count(*) filter (where deposits.amount = withdrawals.amount - withdrawals.fee)
            as fee_inside,
        count(*) filter (where deposits.amount = withdrawals.amount) as fee_outside
    from matched_primaries as withdrawals
    inner join matched_primaries as deposits
        on lower(trim(deposits.txid)) = lower(trim(withdrawals.txid))
        and deposits.asset = withdrawals.asset
        and deposits.kind = 'deposit'
        and deposits.exchange <> withdrawals.exchange
    inner join staging.exchange_rules as rules on rules.exchange = withdrawals.exchange
    where not rules.withdrawal_fee_inside_recorded
        and withdrawals.kind = 'withdrawal'
        and coalesce(withdrawals.fee, 0) <> 0
        and coalesce(withdrawals.fee_asset, withdrawals.asset) = withdrawals.asset
    group by withdrawals.exchange, withdrawals.account
),

all_rows as (
    select
        rows.*,
        case
            when rows.kind <> 'withdrawal' then null
            when rules.withdrawal_fee_inside_recorded then true
            else coalesce(evidence.fee_inside > evidence.fee_outside, false)
        end as fee_in_amount,
        case
            when rows.kind <> 'withdrawal' then null
            when rules.withdrawal_fee_inside_recorded then 'recorded ledger identity'
            when coalesce(evidence.fee_inside + evidence.fee_outside, 0) = 0
                then 'assumed: no withdrawal with a fee reached your other account'
            else format(
                'txid evidence: {} inside, {} outside', evidence.fee_inside, evidence.fee_outside
            )
        end as fee_basis,
        own_fee(rows.fee, rows.fee_asset, rows.asset) as own_fee
    from (
        select * from matched_primaries
        union all
        select * from unmatched_secondaries
    ) as rows
    left join staging.exchange_rules as rules on rules.exchange = rows.exchange
    left join withdrawal_fee_evidence as evidence
        on evidence.exchange = rows.exchange and evidence.account = rows.account
),

final as (
    select
        * exclude (own_fee),
        case
            when not in_ledger then null
            when kind = 'deposit' then amount - own_fee
            when fee_in_amount then -amount
            else -(amount + own_fee)
        end as balance_change
    from all_rows
)

select * from final
