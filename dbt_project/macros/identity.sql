{#- Identity and hashing helpers. The models above staging call these instead of adapter-specific SQL,
    so the same models can run on another adapter (e.g. Spark) by adding a dispatch implementation. -#}

{% macro id_separator() -%}
    {#- Unit separator (0x1f): cannot occur in a trimmed name, so 'a' + 'bc' never collides with 'ab' + 'c'. -#}
    chr(31)
{%- endmacro %}


{% macro normalize_name(expr) -%}
    {{ return(adapter.dispatch('normalize_name', 'music_recsys')(expr)) }}
{%- endmacro %}

{% macro default__normalize_name(expr) -%}
    {#- lower-cased, every run of whitespace ([ \t\n\f\r]) made one space, then trimmed (docs/contracts.md) -#}
    trim(regexp_replace(lower({{ expr }}), '\\s+', ' '))
{%- endmacro %}

{% macro duckdb__normalize_name(expr) -%}
    {#- the regex only runs on the few names that hold a tab or a double space (it is the costly part) -#}
    trim(
        case
            when regexp_matches({{ expr }}, '\s\s|[\t\n\f\r]') then regexp_replace(lower({{ expr }}), '\s+', ' ', 'g')
            else lower({{ expr }})
        end
    )
{%- endmacro %}


{% macro short_id(parts) -%}
    {#- First 16 hex chars of md5 over the parts joined by the unit separator. -#}
    {%- set joined = [] -%}
    {%- for part in parts -%}
        {%- if not loop.first %}{% do joined.append(id_separator()) %}{% endif -%}
        {%- do joined.append(part) -%}
    {%- endfor -%}
    substring({{ dbt.hash(dbt.concat(joined) if joined | length > 1 else joined[0]) }}, 1, 16)
{%- endmacro %}


{% macro unit_interval_hash(parts) -%}
    {{ return(adapter.dispatch('unit_interval_hash', 'music_recsys')(parts)) }}
{%- endmacro %}

{% macro default__unit_interval_hash(parts) -%}
    {#- A deterministic number in [0, 1): the first 8 hex chars of md5, as an integer, over 16^8. -#}
    (cast(conv(substring({{ dbt.hash(dbt.concat(parts)) }}, 1, 8), 16, 10) as bigint) / 4294967296.0)
{%- endmacro %}

{% macro duckdb__unit_interval_hash(parts) -%}
    (cast(('0x' || substring({{ dbt.hash(dbt.concat(parts)) }}, 1, 8)) as bigint) / 4294967296.0)
{%- endmacro %}
