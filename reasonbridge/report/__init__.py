"""The report builder: paper tables and the test-time scaling figure, rebuilt from MLflow runs.

`python -m reasonbridge.report` (or `make report`) reads the table definitions under
`experiments/`, the runs through the MLflow API, and writes Markdown, LaTeX, CSV, the
figure and an index to `reports/`.
"""
