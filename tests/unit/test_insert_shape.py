"""The INSERT ... SELECT ... FROM file() the chDB store builds from a table's columns."""

from __future__ import annotations

from sinks.insert_shape import InsertShape, plain_type


def test_plain_type_removes_every_low_cardinality_wrapper() -> None:
    assert plain_type("LowCardinality(String)") == "String"
    assert plain_type("LowCardinality(Nullable(String))") == "Nullable(String)"
    assert plain_type("Map(LowCardinality(String), String)") == "Map(String, String)"
    assert plain_type("Array(LowCardinality(String))") == "Array(String)"
    assert plain_type("DateTime64(3, 'UTC')") == "DateTime64(3, 'UTC')"
    assert plain_type("Tuple(LowCardinality(String), Decimal(18, 4))") == \
        "Tuple(String, Decimal(18, 4))"


def test_defaults_are_read_as_nullable_and_filled_in_the_select() -> None:
    shape = InsertShape.from_rows([
        ("id", "UUID", "", ""),
        ("site_id", "LowCardinality(String)", "", ""),
        ("version", "UInt8", "DEFAULT", "1"),
        ("tags", "Array(String)", "DEFAULT", "['x']"),
        ("day", "Date", "MATERIALIZED", "today()"),
        ("alias", "String", "ALIAS", "site_id"),
    ])
    assert [c.name for c in shape.columns] == ["id", "site_id", "version", "tags"]
    assert shape.structure() == ("`id` UUID, `site_id` String, `version` Nullable(UInt8), "
                                 "`tags` Array(String)")
    sql = shape.json_insert("db.t", "/tmp/x'y.ndjson", "optimize_on_insert = 0")
    assert sql.startswith("INSERT INTO db.t (`id`, `site_id`, `version`, `tags`) SETTINGS "
                          "optimize_on_insert = 0 SELECT `id`, toValidUTF8(`site_id`) AS "
                          "`site_id`, ifNull(`version`, 1) AS `version`, `tags` FROM file(")
    assert "'/tmp/x\\'y.ndjson', 'JSONEachRow'" in sql


def test_arrow_insert_takes_only_fields_that_are_columns() -> None:
    shape = InsertShape.from_rows([("a", "UInt8", "", ""), ("b", "String", "", "")])
    sql = shape.arrow_insert("db.t", "/tmp/f", ["b", "extra"], "s = 1")
    assert sql == ("INSERT INTO db.t (`b`) SETTINGS s = 1 SELECT `b` "
                   "FROM file('/tmp/f', 'ArrowStream')")
