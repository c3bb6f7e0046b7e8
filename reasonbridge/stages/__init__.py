"""One module per stage of the method; each stage is a function of the run's context (its config,
stage cache and results so far) and the artifacts of the stages before it, returning its own
artifact (a `StageResult`). reasonbridge/pipeline.py chains them."""
