"""The run report (``tadformer report RUN_DIR``), built from a run directory's saved files only.

- :mod:`tadformer.report.build`: ``build_report(run_dir) -> (report.html, report.md)``.
- :mod:`tadformer.report.figures`: one PNG per function (matplotlib, Agg canvas), including
  ``save_timeline_figure`` used by ``tadformer infer --save-fig``.
- :mod:`tadformer.report.analysis`: per-prediction matching, PR curves, DETAD-style error analysis.
- :mod:`tadformer.report.render`: sections rendered as self-contained HTML and Markdown.
"""
