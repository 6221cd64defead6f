"""Many SL outcomes counted in one script: each once, their increments summed per counter.

A batch of outcomes (a statistics write batch, or the journal's entries
applied together) shares its buckets: every answered call of a queue in the
same minute goes to the same rolling slot, interval and day. Counting them
one script each cost Redis a ``SADD`` and about twenty ``HINCRBY`` per call;
one script for the batch costs one ``SMISMEMBER`` and one ``SADD`` per
day's seen set and, per hash, one ``HINCRBY`` per distinct counter or, for
more than two counters (an answered call changes seven fields of each of its
three buckets), one ``HMGET`` and one ``HSET`` of the sums: the same values,
atomically (a script), in two commands instead of up to seven. What is stored is
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
local sums, order, counted = {}, {}, {}
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
  if new and id ~= '' then counted[#counted + 1] = id end
  for j = i + 3, i + 2 + 3 * n, 3 do
    if new then
      local k = ARGV[j] .. '|' .. ARGV[j + 1]
      if sums[k] == nil then sums[k] = 0; order[#order + 1] = {tonumber(ARGV[j]), ARGV[j + 1], k} end
      sums[k] = sums[k] + tonumber(ARGV[j + 2])
    end
  end
  i = i + 3 + 3 * n
end
local per_key, key_order = {}, {}
for _, o in ipairs(order) do
  local v = sums[o[3]]
  if v ~= 0 then
    local t = per_key[o[1]]
    if t == nil then t = {}; per_key[o[1]] = t; key_order[#key_order + 1] = o[1] end
    t[#t + 1] = o[2]; t[#t + 1] = v
  end
end
for _, k in ipairs(key_order) do
  local t = per_key[k]
  if #t <= 2 * 2 then
    for j = 1, #t, 2 do redis.call('HINCRBY', KEYS[k], t[j], string.format('%d', t[j + 1])) end
  else
    local names = {}
    for j = 1, #t, 2 do names[#names + 1] = t[j] end
    local now = redis.call('HMGET', KEYS[k], unpack(names))
    local set = {}
    for j = 1, #t, 2 do
      local was = now[(j + 1) / 2]
      if was then was = tonumber(was) else was = 0 end
      if was == nil then return redis.error_reply('ERR hash value is not an integer') end
      set[#set + 1] = t[j]; set[#set + 1] = string.format('%d', was + t[j + 1])
    end
    redis.call('HSET', KEYS[k], unpack(set))
  end
end
return counted
"""
"""KEYS: every key the batch touches, once. ARGV: for each outcome, the index of its
seen set in KEYS, its id ('' is never deduplicated), the number ``n`` of its counters,
then ``n`` triples (index of the hash in KEYS, field, increment). Returns the ids of
the outcomes this call counted (not in their seen set before, not twice in the batch):
the live figures add an outcome a take-over or a journal replay recovered only then
(``StoreWriter.on_recovered``)."""


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
