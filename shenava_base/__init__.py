"""The bottom floor: what every package shares (asyncio bridge, clock, config tables, masking, the journal seam).

It imports no other Shenava package; see docs/architecture.md.
"""
