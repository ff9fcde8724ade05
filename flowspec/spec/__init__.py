"""Stage 1, torch-free: the spec format and reading it.

``source`` reads YAML once with the position of every key; ``models`` (with ``bases`` and
``training``) is the format as frozen Pydantic models; ``upgrade`` brings old format versions up
to date; ``parse`` validates a source into a :class:`~flowspec.spec.models.FlowSpec` with every
problem located; ``reference`` generates the docs tables and the JSON Schema.
"""

__all__: list[str] = []
