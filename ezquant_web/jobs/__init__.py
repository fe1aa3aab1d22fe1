"""The job machinery every app's background jobs run on, below the apps (it imports none).

``models``
    :class:`~ezquant_web.jobs.models.Job`, the abstract row: status, progress, timings.
``kinds``
    The registry of job kinds: each app registers its concrete models in its
    ``AppConfig.ready()`` (what a kind's state carries beside the row, who hears it).
``runner``
    How any job runs: the atomic claim, progress, heartbeat, cancel, the result committed with
    ``succeeded``, the reaper, the fair order across projects.
``events``
    A job's state as its listeners hear it, sent on the channel layer after commit.
``consumers``
    The base of the job WebSockets: authorise, join, send the persisted state, relay.

Nothing is imported here: the modules need Django's apps loaded, and ``kinds`` and ``runner``
are imported by name where they are used.
"""
