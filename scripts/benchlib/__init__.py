"""scripts/bench: PulseStack's benchmark harness (the performance targets of docs/design.md).

Run it as `scripts/bench` (which sets up .venv first); `scripts/bench --help`
lists the sizes. Modules: procs (child processes, memory, limits), seed
(set-based data through the product's adapter), one module per scenario
(fanout, reads, websockets, throughput) with its worker processes
(wsworker, loadgen, hello), and report (table, docs/performance.md).
"""
