"""Side-by-side evaluation of control policies on the same simulator, traces and seeds."""
