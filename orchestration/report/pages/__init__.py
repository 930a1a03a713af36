"""One module per report page; each exposes `build(...) -> Page`."""
