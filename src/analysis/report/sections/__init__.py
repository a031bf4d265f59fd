"""One module per notebook section: each ``run(ctx)`` computes its section, writes its tables,
figures and results fragment into the run folder, and returns a
:class:`analysis.report.context.Section` to display."""
