"""The complaint register, abuse reports and retention.

- ``reference``: reference numbers (7 digits + a Damm check digit).
- ``complaint``: ``Complaint``, its statuses, allowed transitions and history (pure).
- ``abuse``: agents' reports of abusive callers, reviews, recovery grants (pure).
- ``roles``: who may do what, number masking per role, JSON/CSV export.
- ``store``: ``ComplaintStore``, the only code that touches ``{complaints}`` keys.
- ``service``: ``ComplaintRegister``, what the HTTP API, CLI, IVR and routing call.
"""
