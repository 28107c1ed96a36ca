"""The bundled sample (README.md beside this file): installed with the distribution as package data,
so the dashboard's first start and the quick start work from any directory."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent
POOL = SAMPLE_DIR / "pool"
METADATA = SAMPLE_DIR / "metadata.json"
METADATA_TABLE = SAMPLE_DIR / "metadata.parquet"
