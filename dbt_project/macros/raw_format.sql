{#- The raw format's field rules, used by base_spotify__lines only (DuckDB SQL, at the source boundary). -#}

{% macro raw_field_value(field, has_backslash) -%}
    {#- Unescape ('\"' -> '"', '\\' -> '\'; other backslashes stay as written), then trim surrounding
        spaces and tabs. Both steps are skipped on the (common) values that do not need them. -#}
    {%- set unescaped -%}
        case when {{ has_backslash }} then regexp_replace({{ field }}, '\\(["\\])', '\1', 'g') else {{ field }} end
    {%- endset -%}
    case
        when
            starts_with({{ field }}, ' ') or ends_with({{ field }}, ' ')
            or starts_with({{ field }}, chr(9)) or ends_with({{ field }}, chr(9))
            then trim({{ unescaped }}, ' ' || chr(9))
        else {{ unescaped }}
    end
{%- endmacro %}


{% macro is_trimmed(field) -%}
    {#- true when the value has no surrounding space or tab (cheap: no copy of the value) -#}
    not (
        starts_with({{ field }}, ' ') or ends_with({{ field }}, ' ')
        or starts_with({{ field }}, chr(9)) or ends_with({{ field }}, chr(9))
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
