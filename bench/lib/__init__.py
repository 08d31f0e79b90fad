"""The parts of bench/run: scenarios, machine, servers, measure, report, plots."""
