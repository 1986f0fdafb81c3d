"""Generated-domain (DGA) detection: the character model and the per-client evidence."""
