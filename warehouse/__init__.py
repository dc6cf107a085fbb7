"""Parquet warehouse: schemas, atomic writes, readers and the catalog."""
