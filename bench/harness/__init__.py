"""The benchmark harness: registry (models, datasets, splits, tables), configs, the model interface, and the
stages train -> infer -> score -> record (``bench.harness.run``). ``vtondata bench`` calls
:func:`bench.harness.run.launch_or_run` / :func:`bench.harness.run.run_table`."""
