"""Input/output: atomic writes, Parquet table contracts, video and audio streaming."""
