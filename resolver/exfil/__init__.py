"""Pure helpers of the exfiltration detector: registered domains, name features, bounded state.

Nothing here does I/O per query or reads a clock; ``known_good.read`` is called once at start.
"""
