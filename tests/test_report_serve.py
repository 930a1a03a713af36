"""`segflow report --serve`: the report over http on loopback, so Dagster's link opens."""

from __future__ import annotations

import threading
import urllib.request

import duckdb

from orchestration.cli import build_parser
from orchestration.report import build_report
from orchestration.report.serve import port_of, report_server
from orchestration.settings import Settings


def test_the_report_is_served_on_loopback(tmp_path) -> None:
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    result = build_report(db, tmp_path / "report")
    server = report_server(result.out_dir, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        for page in result.pages:
            with urllib.request.urlopen(f"http://{host}:{port}/{page}", timeout=10) as response:
                assert response.status == 200
                assert "<html" in response.read().decode().lower()
    finally:
        server.shutdown()
        server.server_close()


def test_serve_option_and_the_dagster_link_share_one_setting(monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_REPORT_URL", "http://127.0.0.1:9123/")
    settings = Settings.from_env()
    assert settings.report_url == "http://127.0.0.1:9123" and port_of(settings.report_url) == 9123
    args = build_parser().parse_args(["report", "--serve", "--port", "0"])
    assert args.serve and args.port == 0
