"""Selection: per-task scores, named strategies and ranking. Pure functions over arrays, no I/O."""
