"""The départemental observatory: many communes' Parafoudre boxes report their blocks here."""
