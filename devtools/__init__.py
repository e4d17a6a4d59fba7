"""Development tooling that the test suite and the benchmarks share; never deployed.

It sits on top of the tree, beside `bench/` and `tests/`: it imports nothing of the relay, and
`shared/`, `worker/` and `server/` never import it."""
