"""Agent time, service level, fair breaks and wellbeing: the pure domain.

``states`` (states and reasons), ``ledger`` (every second in one state),
``sla`` (service level and app_queue's figures), ``erlang`` (Erlang C and break
headroom), ``breaks`` (allowances, the fair break line, Jain's index) and
``wellbeing`` (signals and alerts). No I/O here: storage classes and the
daemon's services build on these.
"""
