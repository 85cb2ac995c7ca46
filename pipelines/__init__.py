"""Prefect flows over the DVC DAG (`python -m pipelines.<flow>`)."""
