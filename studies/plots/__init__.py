"""The studies' figures: studies/plots/<study>.py has ``plot(res, cfg, outdir)`` for the study
studies/<study>.py, drawn from its saved ``res`` alone (``python -m studies replot``)."""
