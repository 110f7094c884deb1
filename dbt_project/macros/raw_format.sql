{#- The raw format's field rules, used by base_spotify__lines only (at the source boundary). -#}

{% macro raw_field_value(field, has_backslash) -%}
    {#- Unescape ('\"' -> '"', '\\' -> '\'; other backslashes stay as written), then trim surrounding
        spaces and tabs. Both steps are skipped on the (common) values that do not need them. -#}
    {%- set unescaped -%}
        case when {{ has_backslash }} then {{ unescape_backslashes(field) }} else {{ field }} end
    {%- endset -%}
    case
        when not ({{ is_trimmed(field) }})
            then {{ trim_blanks(unescaped) }}
        else {{ unescaped }}
    end
{%- endmacro %}


{% macro is_trimmed(field) -%}
    {#- true when the value has no surrounding space or tab (cheap: no copy of the value) -#}
    not (
        {{ starts_with(field, "' '") }} or {{ ends_with(field, "' '") }}
        or {{ starts_with(field, 'chr(9)') }} or {{ ends_with(field, 'chr(9)') }}
    )
{%- endmacro %}


{% macro control_character_class() -%}
    {#- Inside a regex character class: the C0 controls but tab, DEL and the C1 controls (Unicode
        category Cc minus tab). A line holding one is quarantined as 'control_character'. -#}
    \x00-\x08\x0a-\x1f\x7f-\x9f
{%- endmacro %}


{% macro control_character_pattern() -%}
    [{{ control_character_class() }}]
{%- endmacro %}


{% macro numbered_elements(relation, list_column, number_column, value_column) -%}
    {#- A select over the one-row relation: each element of the list with its 1-based number, and
        the list's size (n_elements). -#}
    {{ return(adapter.dispatch('numbered_elements', 'music_recsys')(relation, list_column, number_column, value_column)) }}
{%- endmacro %}

{% macro duckdb__numbered_elements(relation, list_column, number_column, value_column) -%}
    select
        unnest(range(1, len({{ list_column }}) + 1)) as {{ number_column }},
        unnest({{ list_column }}) as {{ value_column }},
        len({{ list_column }}) as n_elements
    from {{ relation }}
{%- endmacro %}

{% macro spark__numbered_elements(relation, list_column, number_column, value_column) -%}
    select
        cast(element_index + 1 as bigint) as {{ number_column }},
        {{ value_column }},
        n_elements
    from (
        select
            posexplode({{ list_column }}) as (element_index, {{ value_column }}),
            size({{ list_column }}) as n_elements
        from {{ relation }}
    ) as exploded
{%- endmacro %}
