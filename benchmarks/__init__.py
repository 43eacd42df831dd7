"""Benchmarks (`make bench`): each compares the project's way against a named baseline in the
same run and reports ratios; results are written as JSON under <state_dir>/bench/."""
