-- fill_check_quote: per fill of `fills`, its quote amount against base_amount × price.
-- computed_quote = base_amount × price (exact; rounded half up to 18 decimals only if the
-- product needs more, computed_exact false); quote_difference = quote_amount - computed_quote;
-- quote_rule says how it is judged (docs/exchanges.md), quote_ok the verdict:
--   'exact' (Bitvavo /v2/trades: the quote is amount × price exactly): difference 0;
--   'quote rounded' (Bitstamp: the quote amount is authoritative, rounded to its decimals as
--       sent): |difference| ≤ half a unit of its last decimal;
--   'leg rounded' (Bitvavo app trades: the exchange rounds one leg, down, to its decimals):
--       |difference| < a unit of the quote's last decimal, or < price × a unit of the base's
--       last decimal.
-- quote_decimals: the quote's decimals as sent, read from the row's raw text (a padded
-- "-1083.72" has 2; from the stored value when the text is not found); null for 'exact'.
-- Exact and fast arithmetic: the macros of 000_macros.sql (exact_product…).
-- the raw text of the row `fills` keeps (an order-book row first, then the newest fetch): the
-- one staged row of its source
with kept_raw as (
    select fills.exchange, fills.account, fills.market, fills.fill_id, staged.raw
    from fills
    inner join staging.fills as staged using (exchange, account, market, fill_id, source)
),

ruled as (
    select
        fills.*,
        kept.raw,
        case
            when list_contains(rules.exact_quote_sources, fills.source) then 'exact'
            when list_contains(rules.leg_rounded_quote_sources, fills.source) then 'leg rounded'
            else 'quote rounded'
        end as quote_rule,
        case
            when rules.quote_keyed_by_currency
                then strpos(kept.raw, '"' || lower(fills.quote_asset) || '":')
        end as quote_key_at
    from fills
    left join kept_raw as kept using (exchange, account, market, fill_id)
    left join staging.exchange_rules as rules using (exchange)
),

-- the amounts' texts as sent: Bitstamp's quote is its currency's key, an app trade's legs are
-- sentAmount / receivedAmount
texts as (
    select
        * exclude (raw, quote_key_at),
        case
            when quote_key_at > 0 then regexp_extract(
                substr(raw, quote_key_at + length(quote_asset) + 3), '^"?-?(\d*\.?\d*)', 1
            )
            when quote_rule = 'leg rounded' and side = 'buy'
                then regexp_extract(raw, '"sentAmount":"?-?(\d*\.?\d*)', 1)
            when quote_rule = 'leg rounded'
                then regexp_extract(raw, '"receivedAmount":"?-?(\d*\.?\d*)', 1)
        end as quote_text,
        case
            when quote_rule = 'leg rounded' and side = 'buy'
                then regexp_extract(raw, '"receivedAmount":"?-?(\d*\.?\d*)', 1)
            when quote_rule = 'leg rounded'
                then regexp_extract(raw, '"sentAmount":"?-?(\d*\.?\d*)', 1)
        end as base_text
    from ruled
),

decimals as (
    select
        * exclude (quote_text, base_text),
        case
            when quote_rule <> 'exact' then decimals_as_sent(quote_text, quote_amount)
        end as quote_decimals,
        case
            when quote_rule = 'leg rounded' then decimals_as_sent(base_text, base_amount)
        end as base_decimals
    from texts
),

-- the factors as their whole part and the halves of their fraction (`decimal_parts`), once
parts as (
    select
        *,
        decimal_parts(abs(base_amount)) as base_parts,
        decimal_parts(abs(price)) as price_parts
    from decimals
),

products as (
    select
        *,
        exact_product(base_parts, price_parts) as computed,
        -- (only the 'leg rounded' rule bounds the difference by the price)
        case
            when quote_rule = 'leg rounded' then decimal_units_of_text(abs(price))
        end as price_units
    from parts
),

amounts as (
    select
        *,
        units_to_decimal(exact_round(computed)) as computed_quote,
        computed['rest'] = 0 as computed_exact
    from products
),

differences as (
    select *, quote_amount - computed_quote as quote_difference from amounts
),

judged as (
    select
        *,
        case
            when quote_rule = 'exact' then quote_difference = 0 and computed_exact
            when quote_rule = 'quote rounded'
                then 2 * abs(quote_difference) <= last_decimal_unit(quote_decimals)
            when abs(quote_difference) < last_decimal_unit(quote_decimals) then true
            -- |difference| < price × 10^-base_decimals, that bound rounded up to 18 decimals
            -- (the same verdict: the difference has 18 decimals)
            else abs(quote_difference) < units_to_decimal(
                (price_units + ('1' || repeat('0', base_decimals))::hugeint - 1)
                // ('1' || repeat('0', base_decimals))::hugeint
            )
        end as quote_ok
    from differences
),

final as (
    select
        exchange, account, market, fill_id,  -- the fill's key
        computed_quote,
        computed_exact,
        quote_difference,
        quote_rule,
        quote_decimals,
        quote_ok
    from judged
)

select * from final
