"""Side-by-side evaluation of control policies on the same simulator, traces and seeds.

* :mod:`~jbrl.evaluation.traces` — the held-out evaluation traces and trace files by name;
* :mod:`~jbrl.evaluation.policies` — policy specs: parse a list, build each, probe one;
* :mod:`~jbrl.evaluation.runner` — one policy on one trace on the rollout loop
  (:func:`~jbrl.evaluation.runner.run_policy`) and the driver over every policy, trace and seed
  (:func:`~jbrl.evaluation.runner.evaluate`, in one process or a pool);
* :mod:`~jbrl.evaluation.aggregate` — the figures: a record per run, rows per policy and trace,
  the :class:`~jbrl.evaluation.aggregate.Evaluation`;
* :mod:`~jbrl.evaluation.report` — the table (rich and Markdown);
  :mod:`~jbrl.evaluation.plots` — PNG plots and the latency CDF;
  :mod:`~jbrl.evaluation.tensorboard` — TensorBoard scalars and a custom-scalars layout.

The runs' progress bar is :class:`jbrl.progress.ProgressBar` (shared with training).
"""
