"""Prefect flows over the DVC DAG (`python -m pipelines.<flow>`)."""
import os

# Without a configured Prefect server each flow run starts a temporary local one; on a busy
# 2-core machine that can take longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
