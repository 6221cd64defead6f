"""Many SL outcomes counted in one script: each once, their increments summed per counter.

A batch of outcomes (a statistics write batch, or the journal's entries
applied together) shares its buckets: every answered call of a queue in the
same minute goes to the same rolling slot, interval and day. Counting them
one script each cost Redis a ``SADD`` and about twenty ``HINCRBY`` per call;
one script for the batch costs one ``SMISMEMBER`` and one ``SADD`` per
day's seen set and one ``HINCRBY`` per distinct counter. What is stored is
the same (the keys and fields of :mod:`agent_stats.store`), and an outcome
already in the seen set (a retried batch, a replayed journal entry) or twice
in the batch still counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COUNT_OUTCOMES = """
local seen_idx, ids = {}, {}
local i = 1
while i <= #ARGV do
  local s, id, n = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  if ids[s] == nil then ids[s] = {}; seen_idx[#seen_idx + 1] = s end
  if id ~= '' then table.insert(ids[s], id) end
  i = i + 3 + 3 * n
end
local known = {}
for _, s in ipairs(seen_idx) do
  local list = ids[s]
  if #list > 0 then
    local flags = redis.call('SMISMEMBER', KEYS[s], unpack(list))
    local fresh = {}
    for j, id in ipairs(list) do
      if flags[j] == 1 or known[s .. '|' .. id] then
        known[s .. '|' .. id] = true
      else
        known[s .. '|' .. id] = false
        fresh[#fresh + 1] = id
      end
    end
    if #fresh > 0 then redis.call('SADD', KEYS[s], unpack(fresh)) end
  end
end
local sums, order, counted = {}, {}, 0
local taken = {}
i = 1
while i <= #ARGV do
  local s, id, n = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  local new = true
  if id ~= '' then
    local tag = s .. '|' .. id
    new = (known[tag] == false) and not taken[tag]
    taken[tag] = true
  end
  if new then counted = counted + 1 end
  for j = i + 3, i + 2 + 3 * n, 3 do
    if new then
      local k = ARGV[j] .. '|' .. ARGV[j + 1]
      if sums[k] == nil then sums[k] = 0; order[#order + 1] = {tonumber(ARGV[j]), ARGV[j + 1], k} end
      sums[k] = sums[k] + tonumber(ARGV[j + 2])
    end
  end
  i = i + 3 + 3 * n
end
for _, o in ipairs(order) do
  if sums[o[3]] ~= 0 then redis.call('HINCRBY', KEYS[o[1]], o[2], string.format('%d', sums[o[3]])) end
end
return counted
"""
"""KEYS: every key the batch touches, once. ARGV: for each outcome, the index of its
seen set in KEYS, its id ('' is never deduplicated), the number ``n`` of its counters,
then ``n`` triples (index of the hash in KEYS, field, increment). Returns how many
outcomes were new."""


@dataclass(frozen=True, slots=True)
class OutcomeCounters:
    """One outcome's increments: ``counters`` are (hash key, field, increment)."""

    seen_key: str
    outcome_id: str
    counters: Sequence[tuple[str, str, int]]


def script_call(outcomes: Sequence[OutcomeCounters]) -> tuple[list[str], list[str | int]]:
    """The KEYS and ARGV of :data:`COUNT_OUTCOMES` for ``outcomes``."""
    index: dict[str, int] = {}

    def at(key: str) -> int:
        n = index.get(key)
        if n is None:
            n = index[key] = len(index) + 1  # Lua counts from 1
        return n

    args: list[str | int] = []
    for o in outcomes:
        args += [at(o.seen_key), o.outcome_id, len(o.counters)]
        for key, field, value in o.counters:
            args += [at(key), field, value]
    return list(index), args
