"""segments.beside: independent warehouse work on a second thread with its own cursor."""

from __future__ import annotations

from threading import get_ident

import duckdb
import pytest

from orchestration.segments.beside import beside


def _write(cursor: duckdb.DuckDBPyConnection, value: int) -> tuple[int, object]:
    cursor.execute("insert into t values (?)", [value])
    return get_ident(), cursor


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute("create table t (v INTEGER)")
    connection.execute("create table u (v INTEGER)")
    yield connection
    connection.close()


def test_work_runs_on_another_thread_with_its_own_cursor(conn):
    with beside(conn, _write, 1) as done:
        conn.execute("insert into u values (2)")  # the caller goes on meanwhile
        (thread, cursor), seconds = done.result()
    assert thread != get_ident() and cursor is not conn and seconds >= 0
    assert conn.execute("select * from t").fetchall() == [(1,)]
    assert conn.execute("select * from u").fetchall() == [(2,)]


def test_an_error_in_the_work_reaches_the_caller(conn):
    with (
        pytest.raises(duckdb.CatalogException),
        beside(conn, lambda c: c.execute("select * from nope")) as done,
    ):
        done.result()


def test_here_runs_first_on_the_callers_connection(conn):
    with beside(conn, _write, 3, here=True) as done:
        assert done.done()
        (thread, cursor), _ = done.result()
    assert thread == get_ident() and cursor is conn
