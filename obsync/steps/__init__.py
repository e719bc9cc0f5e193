"""The dataflow's steps between the sources and the sink: shaping, routing, rate limits."""
