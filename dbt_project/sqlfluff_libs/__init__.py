"""Stand-ins for dbt's Jinja context, so SQLFluff's jinja templater can render the models without dbt.

They render plausible DuckDB SQL for linting only; dbt itself never reads this folder.
"""

from types import SimpleNamespace


def _sql(value):
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _listagg(measure, delimiter_text="','", order_by_clause=None, limit_num=None):
    return f"string_agg({measure}, {delimiter_text} {order_by_clause or ''})"


dbt = SimpleNamespace(
    hash=lambda field: f"md5(cast({field} as varchar))",
    concat=lambda fields: " || ".join(str(f) for f in fields),
    listagg=_listagg,
    cast=lambda field, type: f"cast({field} as {type})",
    safe_cast=lambda field, type: f"try_cast({field} as {type})",
    type_string=lambda: "varchar",
    type_int=lambda: "integer",
    type_bigint=lambda: "bigint",
)


def _arg(value):
    # a regex pattern passed to a dispatched macro (macros/cross_db.sql) renders as a string literal
    text = _sql(value)
    if any(c in text for c in "\\[]{}^") and not text.startswith("'"):
        return "'" + text.replace("'", "''") + "'"
    return text


def _numbered_elements(relation, list_column, number_column, value_column):
    return (
        f"select unnest(range(1, len({list_column}) + 1)) as {number_column}, "
        f"unnest({list_column}) as {value_column}, len({list_column}) as n_elements from {relation}"
    )


def _numbered_physical_lines(relation):
    return f"select row_number() over () as line_number, content as raw_line from {relation}"


def _staged_row_index(staged, rejected):
    return (
        f"select {staged}.line_number, {staged}.playlist_number, {staged}.track_number, "
        f"{staged}.line_number - coalesce(preceding.n_rejected, 0) as staged_index from {staged} "
        f"asof left join (select line_number, row_number() over (order by line_number) as n_rejected "
        f"from {rejected}) as preceding on {staged}.line_number > preceding.line_number"
    )


def _dispatch(macro_name, macro_namespace=None):
    # a project macro dispatched per adapter renders as a plain function call
    if macro_name == "numbered_elements":  # renders a whole select
        return _numbered_elements
    if macro_name == "numbered_physical_lines":  # renders a whole select
        return _numbered_physical_lines
    if macro_name == "staged_row_index":  # renders a whole select
        return _staged_row_index
    return lambda *args, **kwargs: f"{macro_name}({_sql([_arg(a) for a in args])})"


adapter = SimpleNamespace(dispatch=_dispatch)

# dbt's run context, as used by dbt_build_info
invocation_id = "00000000-0000-0000-0000-000000000000"
dbt_version = "1.11.0"
run_started_at = __import__("datetime").datetime(2000, 1, 1)
