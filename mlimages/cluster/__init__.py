"""Running the data stages on a Ray cluster: the engine choice (`config`) and the Ray engines.

Nothing here imports Ray at module level: the local engine, the default, runs without it.
"""
