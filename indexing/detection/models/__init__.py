"""Vendored BlazeFace model files (see PROVENANCE.md); a package so wheels carry them."""
