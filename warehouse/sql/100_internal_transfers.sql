-- internal_transfers: coins moved between the user's own accounts (a withdrawal from one
-- account matched to the deposit it became on another, so that it is not a disposal), and
-- every deposit and withdrawal that matched nothing: one row per matched pair (status
-- 'matched') and one per unmatched transfer ('unmatched_withdrawal', 'unmatched_deposit': an
-- external transfer, or one whose other side has not landed), only its own side filled in.
-- Balance-moving transfers only (transfers.in_ledger).
-- Amounts: withdrawn = what left the balance (fee included), sent = withdrawn minus the
-- withdrawal's fee in that asset (whether the reported amount holds the fee is
-- transfers.fee_in_amount: sent is the on-chain amount either way); deposited = the deposit's
-- amount as reported (before its own fee), received = what reached the balance.
-- difference = deposited - sent.
-- Matching, one to one, each rule a pair both sides prefer (nearest in time first):
--   1. 'txid': the same transaction id (trimmed, lower-case) and asset on two accounts;
--   2. 'amount and time', only when one side has no txid: the same asset, deposited = sent,
--      the deposit from 1 hour before (clocks differ) to 72 hours after the withdrawal.
with balance_moving as (
    select
        *,
        case when coalesce(fee_asset, asset) = asset then coalesce(fee, 0) else 0 end as own_fee
    from transfers
    where in_ledger
),

renamed as (
    select
        exchange,
        account,
        source,
        transfer_id,
        kind,
        asset,
        amount,
        fee,
        fee_asset,
        nullif(lower(trim(txid)), '') as txid,
        executed_at,
        balance_change,
        case when kind = 'withdrawal' then -balance_change - own_fee else amount end as on_chain
    from balance_moving
),

withdrawals as (
    select * from renamed where kind = 'withdrawal'
),

deposits as (
    select * from renamed where kind = 'deposit'
),

pairs as (
    select
        withdrawals.exchange as withdrawal_exchange,
        withdrawals.account as withdrawal_account,
        withdrawals.source as withdrawal_source,
        withdrawals.transfer_id as withdrawal_id,
        deposits.exchange as deposit_exchange,
        deposits.account as deposit_account,
        deposits.source as deposit_source,
        deposits.transfer_id as deposit_id,
        coalesce(withdrawals.txid = deposits.txid, false) as same_txid,
        abs(deposits.on_chain - withdrawals.on_chain) as amount_apart,
        abs(epoch_ms(deposits.executed_at) - epoch_ms(withdrawals.executed_at)) as ms_apart
    from withdrawals
    inner join deposits
        on deposits.asset = withdrawals.asset
        and (deposits.exchange <> withdrawals.exchange or deposits.account <> withdrawals.account)
        and (
            deposits.txid = withdrawals.txid
            or (
                (deposits.txid is null or withdrawals.txid is null)
                and deposits.on_chain = withdrawals.on_chain
                and deposits.executed_at
                between withdrawals.executed_at - interval 1 hour
                and withdrawals.executed_at + interval 72 hour
            )
        )
),

txid_matches as (
    select *
    from pairs
    where same_txid
    qualify row_number() over (
        partition by withdrawal_exchange, withdrawal_account, withdrawal_source, withdrawal_id
        order by amount_apart, ms_apart, deposit_exchange, deposit_account, deposit_id
    ) = 1
    and row_number() over (
        partition by deposit_exchange, deposit_account, deposit_source, deposit_id
        order by amount_apart, ms_apart, withdrawal_exchange, withdrawal_account, withdrawal_id
    ) = 1
),

amount_candidates as (
    select *
    from pairs
    where not same_txid
        and not exists (
            select 1 from txid_matches
            where txid_matches.withdrawal_exchange = pairs.withdrawal_exchange
                and txid_matches.withdrawal_account = pairs.withdrawal_account
                and txid_matches.withdrawal_source = pairs.withdrawal_source
                and txid_matches.withdrawal_id = pairs.withdrawal_id
        )
        and not exists (
            select 1 from txid_matches
            where txid_matches.deposit_exchange = pairs.deposit_exchange
                and txid_matches.deposit_account = pairs.deposit_account
                and txid_matches.deposit_source = pairs.deposit_source
                and txid_matches.deposit_id = pairs.deposit_id
        )
),

amount_matches as (
    select *
    from amount_candidates
    qualify row_number() over (
        partition by withdrawal_exchange, withdrawal_account, withdrawal_source, withdrawal_id
        order by ms_apart, deposit_exchange, deposit_account, deposit_id
    ) = 1
    and row_number() over (
        partition by deposit_exchange, deposit_account, deposit_source, deposit_id
        order by ms_apart, withdrawal_exchange, withdrawal_account, withdrawal_id
    ) = 1
),

matches as (
    select *, 'txid' as match_rule from txid_matches
    union all
    select *, 'amount and time' as match_rule from amount_matches
),

matched as (
    select
        'matched' as status,
        matches.match_rule,
        withdrawals.asset,
        withdrawals.exchange as withdrawal_exchange,
        withdrawals.account as withdrawal_account,
        withdrawals.transfer_id as withdrawal_id,
        withdrawals.executed_at as withdrawn_at,
        -withdrawals.balance_change as withdrawn,
        withdrawals.fee as withdrawal_fee,
        withdrawals.on_chain as sent,
        deposits.exchange as deposit_exchange,
        deposits.account as deposit_account,
        deposits.transfer_id as deposit_id,
        deposits.executed_at as deposited_at,
        deposits.amount as deposited,
        deposits.fee as deposit_fee,
        deposits.balance_change as received,
        coalesce(withdrawals.txid, deposits.txid) as txid,
        deposits.amount - withdrawals.on_chain as difference,
        deposits.executed_at - withdrawals.executed_at as in_transit
    from matches
    inner join withdrawals
        on withdrawals.exchange = matches.withdrawal_exchange
        and withdrawals.account = matches.withdrawal_account
        and withdrawals.source = matches.withdrawal_source
        and withdrawals.transfer_id = matches.withdrawal_id
    inner join deposits
        on deposits.exchange = matches.deposit_exchange
        and deposits.account = matches.deposit_account
        and deposits.source = matches.deposit_source
        and deposits.transfer_id = matches.deposit_id
),

unmatched_withdrawals as (
    select
        'unmatched_withdrawal' as status,
        null::varchar as match_rule,
        asset,
        exchange as withdrawal_exchange,
        account as withdrawal_account,
        transfer_id as withdrawal_id,
        executed_at as withdrawn_at,
        -balance_change as withdrawn,
        fee as withdrawal_fee,
        on_chain as sent,
        null::varchar as deposit_exchange,
        null::varchar as deposit_account,
        null::varchar as deposit_id,
        null::timestamptz as deposited_at,
        null::decimal(38, 18) as deposited,
        null::decimal(38, 18) as deposit_fee,
        null::decimal(38, 18) as received,
        txid,
        null::decimal(38, 18) as difference,
        null::interval as in_transit
    from withdrawals
    where not exists (
        select 1 from matches
        where matches.withdrawal_exchange = withdrawals.exchange
            and matches.withdrawal_account = withdrawals.account
            and matches.withdrawal_source = withdrawals.source
            and matches.withdrawal_id = withdrawals.transfer_id
    )
),

unmatched_deposits as (
    select
        'unmatched_deposit' as status,
        null::varchar as match_rule,
        asset,
        null::varchar as withdrawal_exchange,
        null::varchar as withdrawal_account,
        null::varchar as withdrawal_id,
        null::timestamptz as withdrawn_at,
        null::decimal(38, 18) as withdrawn,
        null::decimal(38, 18) as withdrawal_fee,
        null::decimal(38, 18) as sent,
        exchange as deposit_exchange,
        account as deposit_account,
        transfer_id as deposit_id,
        executed_at as deposited_at,
        amount as deposited,
        fee as deposit_fee,
        balance_change as received,
        txid,
        null::decimal(38, 18) as difference,
        null::interval as in_transit
    from deposits
    where not exists (
        select 1 from matches
        where matches.deposit_exchange = deposits.exchange
            and matches.deposit_account = deposits.account
            and matches.deposit_source = deposits.source
            and matches.deposit_id = deposits.transfer_id
    )
),

final as (
    select *
    from (
        select * from matched
        union all
        select * from unmatched_withdrawals
        union all
        select * from unmatched_deposits
    )
    order by coalesce(withdrawn_at, deposited_at), status, asset
)

select * from final
