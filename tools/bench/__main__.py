"""`python -m tools.bench`: the pipeline benchmark (see pipeline.py)."""

from tools.bench.pipeline import main

main()
