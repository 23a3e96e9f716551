"""TMS biophysics: coil E-field over a spherical head, cortical layers, compartmental neurons,
activation thresholds, and the CNN surrogate trained on them."""

__all__ = ["efield", "cortex", "neurons", "threshold", "dataset", "surrogate", "maps", "mechanisms"]
