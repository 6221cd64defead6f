"""Priority routing: which waiting call goes to which agent, and why.

Pure domain modules (no I/O, no clock; every function that needs the time takes
``now``):

- ``calls``: ``WaitingCall``, the facts routing knows about a call.
- ``scoring``: ``ScoringConfig`` and ``score``; why the line's order never
  changes with time and why no call waits forever.
- ``waiting_line``: ``WaitingLine``, heaps per (language, skill).
- ``agents`` and ``selection``: ``AgentView`` and ``choose_agent``.
- ``router``: ``Router``, events in, ``Assignment`` decisions out.
- ``explain``: the words of explanations.
"""
