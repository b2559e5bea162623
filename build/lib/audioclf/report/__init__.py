"""Reports: per-run classification reports and figures, sweep tables across runs."""
