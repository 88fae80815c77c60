"""Reports of an experiment: its tables laid out like the paper's (with the paper's own
numbers beside ours where dataset and protocol are the paper's), paired tests, learning
curves, the per-layer and data-fraction plots of Figs. 5-7, uncertainty maps and t-SNE of
chosen trials (Figs. 8, 9) and provenance, as one self-contained HTML page and as Markdown.

    write_report("s3://bucket/dragsaw", "table4", "reports/table4")   # -> reports/table4/report.html
    dragsaw report --store s3://bucket/dragsaw --experiment table4 --out reports/table4

Modules: ``collect`` (what is read from the store), ``tables``, ``paper_numbers``, ``figures``,
``pictures`` (Figs. 8, 9 from checkpoints), ``provenance``, ``document`` (the report as data),
``html`` and ``markdown`` (its two renderings), ``build`` (``write_report``).
"""

from dragsaw.platform.report.build import write_report
from dragsaw.platform.report.collect import ReportError

__all__ = ["ReportError", "write_report"]
