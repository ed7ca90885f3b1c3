"""whisperlab's shared test kit, installed into the venv by `make setup` (pip install -e tests/kit).

    support          synthetic speech (espeak-ng), PyAV encoding, the packaged models, WER, a running server
    inventory_facts  what the roles derive from the inventory, derived the same way for the testinfra checks

Used by the server's tests and benchmarks, the skill's tests, the testinfra checks and the lab:
`from whisperlab_testkit import support`.
"""
