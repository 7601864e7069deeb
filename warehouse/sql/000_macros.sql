-- macros: the exact-arithmetic helpers of the views, applied before them.
-- No value passes through a float. A DECIMAL(38,18) product is DECIMAL(38,36) and overflows
-- from 100, and rescaling or dividing 128-bit integers is slow. So a factor is read from its
-- 18-decimal text as a whole part (HUGEINT) and its fraction in two 9-digit halves (BIGINT):
-- every partial product fits its integer type, and only 64-bit integers are ever divided.

-- a whole number of units of 1e-18 as DECIMAL(38, 18)
create macro units_to_decimal(units) as
    units::decimal(38, 0) * 0.000000000000000001::decimal(38, 18);

-- n / d rounded half up to a whole number (n >= 0, d > 0)
create macro rounded_quotient(n, d) as (2 * n + d) // (2 * d);

-- x >= 0 (DECIMAL(38, 18)) as its whole part and the halves of its 18-digit fraction
create macro decimal_parts(x) as {
    'whole': split_part(x::decimal(38, 18)::varchar, '.', 1)::hugeint,
    'high': left(split_part(x::decimal(38, 18)::varchar, '.', 2), 9)::bigint,
    'low': right(split_part(x::decimal(38, 18)::varchar, '.', 2), 9)::bigint
};

-- x (DECIMAL(38, 18)) as a whole number of units of 1e-18, split at the point (the whole
-- number times 1e18 would overflow DECIMAL(38, 18))
create macro decimal_units(x) as
    trunc(x)::hugeint * 1000000000000000000 + ((x - trunc(x)) * 1000000000000000000)::hugeint;

-- a × b (both `decimal_parts`) in units of 1e-18: whole·whole·1e18 + whole·fraction
-- + fraction·whole + fraction·fraction / 1e18, the last from the halves: high·high, then the
-- middle terms carried in 64 bits. floor: the product rounded down; rest: what is left, in
-- units of 1e-36 (it decides the rounding; 0 when the product has at most 18 decimals)
create macro exact_middle(a, b) as
    a['high'] * b['low'] + a['low'] * b['high'] + (a['low'] * b['low']) // 1000000000;

create macro exact_product(a, b) as {
    'floor': a['whole'] * b['whole'] * 1000000000000000000
        + a['whole'] * (b['high'] * 1000000000 + b['low'])
        + (a['high'] * 1000000000 + a['low']) * b['whole']
        + a['high'] * b['high']
        + exact_middle(a, b) // 1000000000,
    'rest': (exact_middle(a, b) % 1000000000) * 1000000000 + (a['low'] * b['low']) % 1000000000
};

-- an `exact_product` rounded half up, in units of 1e-18
create macro exact_round(product) as
    product['floor'] + case when product['rest'] >= 500000000000000000 then 1 else 0 end;

-- the decimals a number was sent with: those of its text, else of its value (at most 18)
create macro decimals_as_sent(text, value) as least(18, case
    when strpos(text, '.') > 0 then length(text) - strpos(text, '.')
    when text <> '' then 0
    else length(split_part(rtrim(rtrim(value::varchar, '0'), '.'), '.', 2))
end);

-- what a transfer's own fee takes from the balance of its asset (a fee in another asset
-- moves that asset's balance, not this one's)
create macro own_fee(fee, fee_asset, asset) as
    case when coalesce(fee_asset, asset) = asset then coalesce(fee, 0) else 0 end;

-- a price (candle close) as a whole number of units of 1e-12
create macro close_units(close) as (close::decimal(38, 12) * 1000000000000)::hugeint;

-- 1 / a price given in units of 1e-12 (`close_units`), rounded half up to 18 decimals
create macro inverted_close(units) as
    units_to_decimal(rounded_quotient(1000000000000000000000000000000::hugeint, units));

-- two ranges [a_start, a_end) and [b_start, b_end) share a moment
create macro ranges_overlap(a_start, a_end, b_start, b_end) as a_start < b_end and b_start < a_end;

-- moment t lies from `before` before `around` to `after` after it (both ends included)
create macro within(t, around, before, after) as t between around - before and around + after;

-- `close_units` of a close >= 0 (DECIMAL(38, 18)), read from its text: the same integer (the
-- 13th to 18th decimals round it half up), without dividing 128-bit integers, which is slow
create macro close_units_of_text(close) as case
    when close >= 0 then
        left(replace(close::decimal(38, 18)::varchar, '.', ''), -6)::hugeint
        + (right(close::decimal(38, 18)::varchar, 6) >= '500000')::int
    else close_units(close)
end;

-- `decimal_units` read from the text (DECIMAL(38, 18) prints 18 decimals): the same integer,
-- without dividing 128-bit integers
create macro decimal_units_of_text(x) as replace(x::decimal(38, 18)::varchar, '.', '')::hugeint;

-- a close (DECIMAL(38, 18)) divided by a price given in units of 1e-12 (`close_units`),
-- rounded half up to 18 decimals: `inverted_close` is close_quotient(1, units)
create macro close_quotient(close, units) as
    units_to_decimal(rounded_quotient(close_units_of_text(close) * 1000000000000000000, units));

-- a - b of two TIMESTAMP WITH TIME ZONE: the interval `-` gives, which in a session in UTC (the
-- warehouse's connections) is that of the UTC wall times, ~50x cheaper than the time zone
-- calendar arithmetic `-` does; in any other session time zone, `-` itself
create macro timestamptz_difference(a, b) as case
    when current_setting('TimeZone') in ('UTC', 'Etc/UTC') then
        make_timestamp(epoch_us(a)) - make_timestamp(epoch_us(b))
    else a - b
end;

-- a unit of the last of `decimals` decimals (0 to 18) as DECIMAL(38, 18): 1, 0.1 … 1e-18
create macro last_decimal_unit(decimals) as (
    [
        '1', '0.1', '0.01', '0.001', '0.0001', '0.00001', '0.000001', '0.0000001',
        '0.00000001', '0.000000001', '0.0000000001', '0.00000000001', '0.000000000001',
        '0.0000000000001', '0.00000000000001', '0.000000000000001', '0.0000000000000001',
        '0.00000000000000001', '0.000000000000000001'
    ]::decimal(38, 18)[]
)[decimals + 1];
