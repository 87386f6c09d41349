"""The elicitation engine: a run's configuration asked of a model into its run folder.

- ``config``: ``RunConfig`` (what a run is, checked once), the paper's protocol, the backend it asks through;
- ``engine``: ``Elicitation``, the loop — the paper's active learning round by round, or a fixed plan in one go —
  appending records as answers return, resumable;
- ``backends``: lm-eval, Inspect and the simulator behind one ``Backend`` interface;
- ``cache``: answers kept per model and rendered prompt, shared by runs;
- ``strategies``: the active-learning rules that choose the next pairs;
- ``pseudolabels``: the paper's pseudolabel refit.

``ue_tasks.runner`` enters the engine (``ue run``); the run folder itself is ``ue_tasks.run_folder``.
"""
