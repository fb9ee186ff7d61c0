"""Background jobs (autolabel, automate, resolve, routing refits): a queue in the ``jobs`` table
and the workers that run it.

``queue`` enqueues, claims (``SKIP LOCKED``), heartbeats and finishes jobs; ``kinds`` maps a kind
to its function of (store, project, params); ``worker`` runs them. The server only enqueues (and,
unless ``VERITAG_EMBEDDED_WORKER=false``, runs one worker thread per process); ``veritag worker``
runs workers in their own processes. Nothing here imports the web framework.
"""
