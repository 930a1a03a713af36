"""The Spark engine (SEGFLOW_ENGINE=spark): raw export to Parquet, the Spark session, reads."""
