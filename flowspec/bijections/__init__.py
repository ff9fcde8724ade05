"""Torch modules of the layer kinds, built from IR nodes by the op registry's builders."""
