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
with renamed as (
    select
        * replace (nullif(lower(trim(txid)), '') as txid),
        {'exchange': exchange, 'account': account, 'source': source, 'transfer_id': transfer_id}
            as transfer_key,
        case
            when kind = 'withdrawal' then -balance_change - own_fee(fee, fee_asset, asset)
            else amount
        end as on_chain
    from transfers
    where in_ledger
),

-- each side under the names of its columns in the view
withdrawals as (
    select
        transfer_key as withdrawal_key,
        asset,
        txid,
        on_chain,
        exchange as withdrawal_exchange,
        account as withdrawal_account,
        transfer_id as withdrawal_id,
        executed_at as withdrawn_at,
        -balance_change as withdrawn,
        fee as withdrawal_fee,
        on_chain as sent
    from renamed
    where kind = 'withdrawal'
),

deposits as (
    select
        transfer_key as deposit_key,
        asset,
        txid,
        on_chain,
        exchange as deposit_exchange,
        account as deposit_account,
        transfer_id as deposit_id,
        executed_at as deposited_at,
        amount as deposited,
        fee as deposit_fee,
        balance_change as received
    from renamed
    where kind = 'deposit'
),

pairs as (
    select
        withdrawals.withdrawal_key,
        deposits.deposit_key,
        coalesce(withdrawals.txid = deposits.txid, false) as same_txid,
        abs(deposits.on_chain - withdrawals.on_chain) as amount_apart,
        abs(epoch_ms(deposits.deposited_at) - epoch_ms(withdrawals.withdrawn_at)) as ms_apart
    from withdrawals
    inner join deposits
        on deposits.asset = withdrawals.asset
        and (
            deposits.deposit_exchange <> withdrawals.withdrawal_exchange
            or deposits.deposit_account <> withdrawals.withdrawal_account
        )
        and (
            deposits.txid = withdrawals.txid
            or (
                (deposits.txid is null or withdrawals.txid is null)
                and deposits.on_chain = withdrawals.on_chain
                and within(
                    deposits.deposited_at, withdrawals.withdrawn_at, interval 1 hour,
                    interval 72 hour
                )
            )
        )
),

txid_matches as (
    select *
    from pairs
    where same_txid
    qualify row_number() over (
        partition by withdrawal_key
        order by amount_apart, ms_apart, deposit_key.exchange, deposit_key.account,
            deposit_key.transfer_id
    ) = 1
    and row_number() over (
        partition by deposit_key
        order by amount_apart, ms_apart, withdrawal_key.exchange, withdrawal_key.account,
            withdrawal_key.transfer_id
    ) = 1
),

amount_matches as (
    select *
    from pairs
    where not same_txid
        and withdrawal_key not in (select withdrawal_key from txid_matches)
        and deposit_key not in (select deposit_key from txid_matches)
    qualify row_number() over (
        partition by withdrawal_key
        order by ms_apart, deposit_key.exchange, deposit_key.account, deposit_key.transfer_id
    ) = 1
    and row_number() over (
        partition by deposit_key
        order by ms_apart, withdrawal_key.exchange, withdrawal_key.account,
            withdrawal_key.transfer_id
    ) = 1
),

matches as (
    select withdrawal_key, deposit_key, 'txid' as match_rule from txid_matches
    union all
    select withdrawal_key, deposit_key, 'amount and time' as match_rule from amount_matches
),

matched as (
    select
        'matched' as status,
        matches.match_rule,
        withdrawals.asset,
        withdrawals.* exclude (withdrawal_key, asset, txid, on_chain),
        deposits.* exclude (deposit_key, asset, txid, on_chain),
        coalesce(withdrawals.txid, deposits.txid) as txid,
        deposits.deposited - withdrawals.sent as difference,
        deposits.deposited_at - withdrawals.withdrawn_at as in_transit
    from matches
    inner join withdrawals on withdrawals.withdrawal_key = matches.withdrawal_key
    inner join deposits on deposits.deposit_key = matches.deposit_key
),

unmatched_withdrawals as (
    select
        'unmatched_withdrawal' as status,
        asset,
        * exclude (withdrawal_key, asset, txid, on_chain),
        txid
    from withdrawals
    where withdrawal_key not in (select withdrawal_key from matches)
),

unmatched_deposits as (
    select
        'unmatched_deposit' as status,
        asset,
        * exclude (deposit_key, asset, txid, on_chain),
        txid
    from deposits
    where deposit_key not in (select deposit_key from matches)
),

-- an unmatched side's columns of the other side are null
final as (
    select *
    from (
        select * from matched
        union all by name
        select * from unmatched_withdrawals
        union all by name
        select * from unmatched_deposits
    )
    order by coalesce(withdrawn_at, deposited_at), status, asset
)

select * from final
