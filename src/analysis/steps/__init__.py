"""One module per notebook: each ``run(ctx)`` computes its section, writes its tables, figures and
results fragment into the run folder, and returns a :class:`analysis.context.Section` to display."""
