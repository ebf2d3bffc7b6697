"""Face detectors behind one protocol (``base.Detector``), chosen by name."""
