"""Small benchmarks and agents for the plug-in tests: one that conforms, and one per contract violation."""
