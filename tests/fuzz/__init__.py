"""Differential fuzzing against wasmtime and validation agreement with
wasm-tools: ``wasmtools`` (generator, mutator, validator, the feature list),
``differential`` (the engines and their traces), ``campaign`` (numbered,
reproducible cases). Command line: scripts/fuzz.py; tests: test_fuzz.py."""
